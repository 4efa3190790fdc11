"""The training job from its top, the same for every engine: the job's files and configuration, the model
folder's space, the engine's training on this host (semseg.fit.assembly, in this process or the engine's
workers), then, on the first host, once training has returned (also after a stop request, whose artifacts are
written), what is made of the best weights: the MXNet symbol file and the ONNX models (semseg.export). They run
here, after the engine's workers freed their devices and without the collective stop of several hosts (this
host's own stop request decides whether the INT8 work starts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from semseg import __version__
from semseg.contract.config import Config, defaults
from semseg.contract.errors import ExitAtOnce, Stopped
from semseg.contract.files import BEST_PARAMS, VolumeError
from semseg.contract.job import Job, JobPaths, environ_summary, load_job
from semseg.contract.options import RunOptions
from semseg.contract.previous_outputs import set_aside_earlier_outputs
from semseg.contract.signals import StopFlag
from semseg.data.pipeline import Listed
from semseg.engines import engine, write_symbol
from semseg.engines.weights import MANIFEST, built_without_weights
from semseg.export.write import write_exports
from semseg.fit.assembly import Trained
from semseg.fit.disk import check_space, model_folder_error

log = logging.getLogger(__name__)


def train(paths: JobPaths, environ: Mapping[str, str], stop: StopFlag) -> Trained:
    """The job under `paths` with the settings of `environ`; Stopped (after its files) when a signal ended it."""
    log.info("semseg %s, base folder %s", __version__, paths.base_dir)
    log.info("Environment: %s", environ_summary(environ))
    set_aside_earlier_outputs(paths)
    job = load_job(paths)
    log.info("Reading default configuration: %s", json.dumps(defaults(), sort_keys=True))
    log.info("Provided configuration: %s", json.dumps(job.hyperparameters, sort_keys=True))
    config = Config.from_hyperparameters(job.hyperparameters)
    log.info("Final configuration: %s", json.dumps(config.to_hyperparameters(), sort_keys=True))
    options = RunOptions.from_environ(environ)
    say_if_built_without_weights(options)
    if job.cluster.leader:  # the host that writes the model and the checkpoints
        check_space(config, paths.model_dir, job.checkpoint_dir)
    try:
        trained: Trained = engine(options.engine).train(job, config, options, stop)  # its framework loads now
    except (Stopped, ExitAtOnce) as exc:
        if job.cluster.leader and isinstance(exc.cause if isinstance(exc, ExitAtOnce) else exc, Stopped):
            made_of_the_best(job, config, options, stop, None)
        raise
    if job.cluster.leader:
        made_of_the_best(job, config, options, stop, trained.listed)
    return trained


def say_if_built_without_weights(options: RunOptions) -> None:
    """The start of the log says when the image was built without ImageNet weights (a job that needs them ends with
    the ClientError of semseg.engines.weights.backbone_weights_file, which says how to add them)."""
    if built_without_weights(options.weights_root):
        log.warning(
            "This image was built without ImageNet weights (PREFETCH_WEIGHTS=0; %s lists none): "
            "use_pretrained_model=True needs them", options.weights_root / MANIFEST,
        )  # fmt: skip


def made_of_the_best(job: Job, config: Config, options: RunOptions, stop: StopFlag, listed: Listed | None) -> None:
    """The symbol file and the ONNX models of model_best.params; `listed`: the File-mode pairs the job trained on
    (None: it was stopped, and there is time for the FP32 export only)."""
    model_dir = job.paths.model_dir
    best = model_dir / BEST_PARAMS
    if not best.is_file():  # stopped before training wrote any weights
        return
    try:
        write_symbol(config, best, model_dir)
    except VolumeError as exc:
        if model_dir in exc.path.parents:
            raise model_folder_error(exc, config, model_dir) from exc
        raise
    log.info("Artifacts in %s: %s", model_dir, ", ".join(sorted(p.name for p in model_dir.iterdir())))
    write_exports(job, config, options.export, options.pixel_budget, lambda: stop.signum is not None, listed)
