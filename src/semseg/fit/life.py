"""A training job's life, written once for every engine: hyperparams.json, resume from the newest checkpoint,
fit with the job's hooks (metric lines, best weights, checkpoints), early stopping, divergence, and the GluonCV
artifacts at the end, also after a stop request. The job's assembly (semseg.fit.assembly) hands it a `Session`:
the engine's loop and state (checkpoint and GluonCV files), the loaders, seeding, and the part of the job this
process is (semseg.distributed.part). What is made of the best weights after training (the symbol file, the ONNX
models) is the job's top's (semseg.training), once training has returned.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from semseg.contract.config import Config
from semseg.contract.errors import AlgorithmError, Stopped
from semseg.contract.files import VolumeError
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.report import Reporter
from semseg.contract.signals import StopSignal
from semseg.distributed.part import Part
from semseg.fit.artifacts import finish, restore_best, write_hyperparams
from semseg.fit.checkpoint import CheckpointStore
from semseg.fit.disk import model_folder_error
from semseg.fit.early_stopping import EarlyStopping
from semseg.fit.hooks import JobHooks, JobState, epoch_seed
from semseg.fit.loop import Diverged, TrainData, TrainLoop, fit
from semseg.fit.progress import TimeLeft
from semseg.measures.results import FitResult
from semseg.outputs.board import Board
from semseg.outputs.recorder import Outputs, Samples

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Session:
    """An engine's part of a job, ready to train."""

    loop: TrainLoop
    state: JobState
    loaders: tuple[TrainData, Iterable[Any]]
    seed_engine: Callable[[int], None]  # the engine's random generator (dropout), seeded per epoch
    materialize: Callable[[], None] = lambda: None  # every parameter has its data (before a checkpoint loads)
    part: Part = field(default_factory=Part)  # which part of the job this process is (leader, reports, exchange)


@dataclass(frozen=True)
class Start:
    """Where training starts: epoch 0 with fresh early stopping, or after a checkpoint's epoch."""

    checkpoints: CheckpointStore | None
    first_epoch: int
    early_stopping: EarlyStopping
    outputs: dict[str, Any] | None = None  # the checkpoint's record for semseg.outputs.recorder


def run_job(job: Job, config: Config, options: RunOptions, stop: StopSignal, session: Session) -> FitResult:
    """The job from hyperparams.json to its artifacts; Stopped when a signal ended it (after the artifacts); a
    model folder that fills up or is read-only, a ClientError that says so (semseg.fit.disk)."""
    try:
        return _run_job(job, config, options, stop, session)
    except VolumeError as exc:
        if job.paths.model_dir in exc.path.parents:
            raise model_folder_error(exc, config, job.paths.model_dir) from exc
        raise


def _run_job(job: Job, config: Config, options: RunOptions, stop: StopSignal, session: Session) -> FitResult:
    model_dir = job.paths.model_dir
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", config.iterations_per_epoch, config.epochs)
    part = session.part
    if part.leader:
        write_hyperparams(config, model_dir)
    start = resume(job, config, session.state, session.materialize, part.leader)
    if part.exchange is not None:
        part.exchange.check_same("resume", start.first_epoch, "the epoch to resume from (checkpoints must be shared)")
    result = train_epochs(job, config, options, stop, session, start)
    if result.interrupted and part.exchange is not None:
        part.exchange.drain()  # stopping: the others end after this, maybe before this one wrote its artifacts
    if part.leader:
        finish(session.state, model_dir)
    return stopped_or(result, stop)


def resume(job: Job, config: Config, state: JobState, materialize: Callable[[], None], leader: bool = True) -> Start:
    """Fresh early stopping at epoch 0, or the newest valid checkpoint of this engine loaded into `state`;
    only the `leader` writes (the resumed best weights) and later checkpoints."""
    early_stopping = EarlyStopping(
        config.early_stopping,
        config.early_stopping_min_epochs,
        config.early_stopping_patience,
        config.early_stopping_tolerance,
    )
    if job.checkpoint_dir is None:
        return Start(None, 0, early_stopping)
    checkpoints = CheckpointStore(job.checkpoint_dir, config.to_hyperparameters())
    materialize()
    restored = checkpoints.restore(state, tidy=leader)
    if restored is None:
        return Start(checkpoints if leader else None, 0, early_stopping)
    if restored.best_params is not None and leader:
        restore_best(state, restored.best_params, job.paths.model_dir)
    progress = restored.early_stopping  # the tracking of the checkpoint's run, under this job's settings
    resumed = dataclasses.replace(
        early_stopping, best=progress.best, best_epoch=progress.best_epoch,
        epochs_without_improvement=progress.epochs_without_improvement,
    )  # fmt: skip
    return Start(checkpoints if leader else None, restored.next_epoch, resumed, restored.outputs)


def train_epochs(
    job: Job, config: Config, options: RunOptions, stop: StopSignal, session: Session, start: Start
) -> FitResult:
    """fit() with the job's hooks; a diverged loss becomes an AlgorithmError that says what to change."""
    model_dir = job.paths.model_dir
    outputs = open_outputs(job, config, session, start) if session.part.leader else None
    reporter = Reporter(job.current_host, config.epochs, enabled=session.part.reports)
    hooks = JobHooks(
        config,
        reporter,
        session.state,
        model_dir if session.part.leader else None,
        lambda epoch: session.seed_engine(epoch_seed(options.seed, epoch)),
        start.checkpoints if session.part.reports else None,
        start.early_stopping,
        TimeLeft(config.epochs, config.iterations_per_epoch, config.mini_batch_size / job.cluster.size),
        outputs,
    )
    log.info("Training starts at epoch %d of %d", start.first_epoch, config.epochs)
    try:
        result = fit(
            session.loop,
            session.loaders[0],
            outputs.samples if outputs is not None else session.loaders[1],
            epochs=config.epochs,
            whole_image_validation=config.whole_image_validation,
            early_stopping=start.early_stopping,
            hooks=hooks,
            progress_every=options.progress_every,
            first_epoch=start.first_epoch,
            should_stop=stop,
        )
    except Diverged as exc:
        kept = ", ".join(sorted(p.name for p in model_dir.iterdir())) if model_dir.is_dir() else "nothing"
        raise AlgorithmError(
            f"{exc.message} Lower learning_rate (now {config.learning_rate:g}), e.g. to a tenth. "
            f"Kept in {model_dir}: {kept}."
        ) from exc
    finally:
        if outputs is not None:
            outputs.close()
    if result.stopped_early:
        last = result.epochs_run + start.first_epoch - 1
        log.info("Early stopping after epoch %d: best mIOU %.6f at epoch %d", last, result.best_miou, result.best_epoch)
    return result


def open_outputs(job: Job, config: Config, session: Session, start: Start) -> Outputs:
    """output/data and TensorBoard (the first host's), with the validation images kept as they pass by."""
    board = Board.open(job.paths.tensorboard_dir, config.iterations_per_epoch, start.first_epoch)
    outputs = Outputs(job.paths.output_data_dir, board, Samples(session.loaders[1]), session.loop.classes)
    if start.outputs:
        outputs.resume(start.outputs, config.num_classes)
    return outputs


def stopped_or(result: FitResult, stop: StopSignal) -> FitResult:
    """The result, or Stopped when a signal ended training (after the artifacts were written)."""
    if result.interrupted and stop.signum is not None:
        raise Stopped(stop.signum)
    return result
