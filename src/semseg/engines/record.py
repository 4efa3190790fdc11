"""What an engine is, for the registry (semseg.engines) and its users: its record, the settings of a server
worker's predictor, and the Predictor protocol that the server and its test-time augmentation use."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from semseg.contract.config import Config
    from semseg.contract.job import Job
    from semseg.contract.model_folder import ModelFolder
    from semseg.contract.options import RunOptions
    from semseg.contract.signals import StopFlag
    from semseg.engines.gpus import Gpu


class Predictor(Protocol):
    """A model ready to answer, on one device (semseg.measures.sliding.SlidingWindows over the engine's scorer): what
    the server and its test-time augmentation (semseg.serving.tta) use."""

    @property
    def num_classes(self) -> int: ...

    def bands(self, image: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, class probabilities [C, rows, W]) for consecutive bands of rows of an HxWx3 uint8 image."""

    def classes(self, image: np.ndarray) -> np.ndarray:
        """HxW uint8 class ids."""

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """[C, H, W] float32 class probabilities."""


def gpu_index(device: str) -> int | None:
    """The GPU of a server worker's `device` ("gpu:<i>"), or None for "cpu"."""
    return int(device.split(":", 1)[1]) if device.startswith("gpu:") else None


@dataclass(frozen=True)
class PredictorSettings:
    """How a server worker's predictor runs: its pixel budget, the autocast type (engines that have it), and its
    threads on the CPU (0: the runtime's default; the engines read OMP_NUM_THREADS)."""

    pixel_budget: int
    autocast: str | None = None
    threads: int = 0


@dataclass(frozen=True)
class Served:
    """What answers a server's requests: an engine's network, or an exported model on a runtime (semseg.serving.choice).
    Its functions are module-level (or partials of them), so the server's parent can check in a child process."""

    label: str  # for the start log: which model, on what
    check_model: Callable[[ModelFolder], str]  # "" when the model loads and answers, else the ClientError's message
    load_predictor: Callable[[ModelFolder, str, PredictorSettings], Predictor]  # on "cpu" or "gpu:<i>"


@dataclass(frozen=True)
class Engine:
    name: str  # SEMSEG_ENGINE's value
    label: str  # for the log and messages: its framework
    train: Callable[[Job, Config, RunOptions, StopFlag], Any]  # the whole job on this host: semseg.fit.assembly.Trained
    check_model: Callable[[ModelFolder], str]  # "" when the folder's weights load into its network, else why not
    load_predictor: Callable[[ModelFolder, str, PredictorSettings], Predictor]  # on "cpu" or "gpu:<i>"
    check_gpus: Callable[[Sequence[Gpu]], None]  # ClientError for a GPU it cannot run (before any framework loads)
    autocast: bool = False  # whether its predictor computes under autocast (SEMSEG_SERVE_AUTOCAST)
    # the symbol file (model-symbol.json, model-0000.params) of a GluonCV file: the MXNet engine's, for every job
    write_symbol: Callable[[Config, Path, Path], object] | None = None

    def served(self, folder: ModelFolder) -> Served:
        """The folder's GluonCV weights on this engine."""
        return Served(f"{folder.weights.name} on the {self.label} engine", self.check_model, self.load_predictor)
