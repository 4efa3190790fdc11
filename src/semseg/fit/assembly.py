"""One job assembly for both engines: what every training process does between its devices and the job's life
(semseg.fit.life), from the kit its engine hands over and the part of the job it is (semseg.distributed.part):
seeds, the channels listed once, the class weights, the loaders, the loop's settings, the network (fresh, with the
ImageNet backbone where asked, or the `model` channel's seed model), the engine's loop and state, and the stop
that every part takes at the same iteration.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from semseg.contract.config import Config
from semseg.contract.job import Job
from semseg.contract.model_folder import ModelFolder
from semseg.contract.options import RunOptions
from semseg.contract.seed_model import find_seed_model
from semseg.contract.signals import StopSignal
from semseg.data.pipeline import Listed, Loader, build_loaders, list_channels
from semseg.distributed.part import Part
from semseg.distributed.stop import CollectiveStop
from semseg.fit.class_weights import class_weights
from semseg.fit.hooks import JobState
from semseg.fit.life import Session, run_job
from semseg.fit.loop import LoopSettings, TrainLoop
from semseg.measures.results import FitResult


@dataclass(frozen=True)
class Trainee:
    """An engine's network ready to train: its loop, its state (checkpoint and GluonCV files), and how every
    parameter gets its data before a checkpoint loads (MXNet's deferred initialisation)."""

    loop: TrainLoop
    state: JobState
    materialize: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class Trained:
    """How training ended on this process, and the File-mode pairs as the job listed them (what is made of the
    best weights afterwards reads them: semseg.export)."""

    result: FitResult
    listed: Listed


class Kit(Protocol):
    """What an engine hands the assembly: the framework's parts, on the devices it chose for this part."""

    @property
    def loader(self) -> Loader:
        """Its DataLoader, and this part's data worker processes."""

    def seed(self, seed: int) -> None:
        """The framework's random generator (dropout, initialisation)."""

    def fresh_network(self) -> Any:
        """A new network, with the ImageNet backbone where the configuration asks for it."""

    def seed_network(self, model: ModelFolder) -> Any:
        """The network of a trained model folder (the `model` channel)."""

    def trainee(self, network: Callable[[], Any], settings: LoopSettings) -> Trainee:
        """The network that `network()` builds (called when the engine is ready for it) with its optimizer, loop
        and state."""


def train_part(job: Job, config: Config, options: RunOptions, stop: StopSignal, kit: Kit, part: Part) -> Trained:
    """This part's share of the job, from its seeds to its artifacts (semseg.fit.life.run_job)."""
    seed_everything(options.seed)
    kit.seed(options.seed)
    if part.world > 1 and part.exchange is not None:
        stop = CollectiveStop(stop, part.exchange.allreduce)  # every part stops at the same iteration
    local = stop.local if isinstance(stop, CollectiveStop) else stop
    listed = list_channels(job)
    weights = class_weights(job, config, options.seed, part, listed.get("train"))
    loaders = build_loaders(job, config, options.seed, kit.loader, part, listed, options.pipe(local))
    settings = LoopSettings.of(config, options.pixel_budget, weights)
    trainee = kit.trainee(lambda: network(job, config, kit), settings)
    session = Session(trainee.loop, trainee.state, loaders, kit.seed, trainee.materialize, part)
    return Trained(run_job(job, config, options, stop, session), listed)


def network(job: Job, config: Config, kit: Kit) -> Any:
    """A fresh network (ImageNet backbone when asked), or the seed model of the `model` channel."""
    channel = job.channel("model")
    if channel is None:
        return kit.fresh_network()
    with tempfile.TemporaryDirectory(prefix="semseg-seed-") as work:
        return kit.seed_network(find_seed_model(channel, Path(work), config))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
