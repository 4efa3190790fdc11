"""A training job on the PyTorch engine: the same steps, log lines, checkpoints and artifacts as the MXNet
engine (semseg.training), with one process per GPU under DistributedDataParallel, started by PyTorch's own
launcher (torch.distributed's elastic agent, what `torchrun --standalone` runs).

Every process trains its share of each batch; the first one writes the log lines, checkpoints and artifacts.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from semseg import artifacts
from semseg.config import Config
from semseg.data.loaders import torch_loader
from semseg.data.pipeline import build_loaders
from semseg.errors import AlgorithmError, ClientError, JobError, Stopped
from semseg.fitting import FitResult
from semseg.job import Job
from semseg.options import RunOptions
from semseg.schedule import Schedule
from semseg.seed_model import find_seed_model
from semseg.signals import StopFlag
from semseg.sliding import DEFAULT_PIXEL_BUDGET
from semseg.torchengine import artifacts_io
from semseg.torchengine.devices import Plan, plan_devices
from semseg.torchengine.loop import Precision, TorchLoop
from semseg.torchengine.models import SegmentationNet
from semseg.torchengine.optim import MXNetOptimizer
from semseg.torchengine.state import TorchState
from semseg.training import AUX_WEIGHT, resume, run, seed_everything, stopped_or

log = logging.getLogger(__name__)


def train_torch(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    plan = plan_devices(config, options)  # the GPU checks, before any data or model work
    if plan.processes > 1 and job.pipes:
        log.warning(
            "Pipe-mode channel(s) %s have a single reader: the torch engine trains in one process on one "
            "device instead of %d. Use File or FastFile mode to train on all of them.",
            ", ".join(sorted(job.pipes)),
            plan.processes,
        )
    if plan.processes == 1 or job.pipes:
        device = torch.device("cuda", 0) if plan.kind == "cuda" else torch.device("cpu")
        return train_process(job, config, options, stop, device, rank=0)
    return _launch(job, config, options, plan)


def train_process(
    job: Job, config: Config, options: RunOptions, stop: StopFlag, device: torch.device, rank: int, processes: int = 1
) -> FitResult:
    """The whole job in this process (or its share of it: `rank` of `processes`, DDP set up by the caller)."""
    seed_everything(options.seed)
    torch.manual_seed(options.seed)
    on_gpu = device.type == "cuda"
    if on_gpu:
        configure_cuda(device)
    workers = options.workers_for(on_gpu)
    if on_gpu and processes > 1:
        workers = max(1, workers // processes)
    make_loader = partial(torch_loader, pin=on_gpu)
    loaders = build_loaders(
        job, config, options.seed, workers, make_loader, shard=(rank, processes), pipe=options.pipe(stop)
    )
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", config.iterations_per_epoch, config.epochs)
    net = network(job, config, options.weights_root)
    net.to(device)
    if on_gpu:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as benchmarks/gpu.py measures
    model: nn.Module = net
    if processes > 1:
        if config.syncbn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if on_gpu else None)
    elif config.syncbn:
        log.info("syncbn=True: one process, BatchNorm already sees the whole batch")
    loop = make_loop(net, config, device, model=model, pixel_budget=options.pixel_budget)
    precision = loop.precision
    if precision.autocast is not None:
        log.info("Mixed precision: autocast to %s, float32 weights%s", precision.autocast, _scaler_note(precision))
    first = rank == 0
    if first:
        artifacts.write_hyperparams(config, job.paths.model_dir)
    state = TorchState(net, loop)
    start = resume(job, config, state, lambda: None)
    result = run(job, config, options, stop, loop, state, start, loaders, _seed_torch, report=first)
    if first:
        artifacts_io.finish(config, net, state.best, job.paths.model_dir)
    return stopped_or(result, stop)


def _seed_torch(seed: int) -> None:
    torch.manual_seed(seed)


def _scaler_note(precision: Precision) -> str:
    return ", dynamic loss scaling (this GPU has no bfloat16)" if precision.needs_scaler else ""


def network(job: Job, config: Config, weights_root: Path) -> SegmentationNet:
    """A fresh network (ImageNet backbone when asked), or the seed model of the `model` channel."""
    net = SegmentationNet(config.algorithm, config.backbone, config.num_classes)
    channel = job.channel("model")
    if channel is not None:
        with tempfile.TemporaryDirectory(prefix="semseg-seed-") as work:
            artifacts_io.load_model_folder(net, find_seed_model(channel, Path(work), config))
    elif config.use_pretrained_model:
        artifacts_io.load_backbone(net, config, weights_root)
    return net


def configure_cuda(device: torch.device) -> None:
    """cuDNN autotuning (the crop size is fixed, so the search pays once) and TF32 for float32 convolutions."""
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def make_loop(
    net: SegmentationNet,
    config: Config,
    device: torch.device,
    *,
    model: nn.Module | None = None,
    pixel_budget: int = DEFAULT_PIXEL_BUDGET,
) -> TorchLoop:
    """The job's loop for `net` on `device` (trained through `model`, its DDP wrapper, when given): the
    configuration's optimizer, schedule, batch and precision; channels-last on GPUs."""
    return TorchLoop(
        model or net,
        optimizer_for(net, config),
        Schedule(config),
        device,
        config.num_classes,
        global_batch=config.mini_batch_size,
        aux_weight=AUX_WEIGHT,
        precision=Precision.for_device(device, config.precision_dtype == "float16"),
        channels_last=device.type == "cuda",
        pixel_budget=pixel_budget,
        crop_size=config.crop_size,
    )


def optimizer_for(net: SegmentationNet, config: Config) -> MXNetOptimizer:
    momentum = config.momentum if config.optimizer in ("sgd", "nag") else 0.0
    return MXNetOptimizer(
        net.param_groups(config.learning_rate),
        config.optimizer,
        lr=config.learning_rate,
        wd=config.weight_decay,
        momentum=momentum,
        gamma1=config.gamma1,
        gamma2=config.gamma2,
    )


@dataclass(frozen=True)
class Outcome:
    """What a worker process hands back to the launcher: its result, or the error it ended with."""

    result: FitResult | None = None
    kind: str = ""
    message: str = ""
    signum: int = 0


def _launch(job: Job, config: Config, options: RunOptions, plan: Plan) -> FitResult:
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    log.info("Starting %d training processes (%s, torch.distributed %s)", plan.processes, plan.kind, plan.backend)
    launch = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=plan.processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port, as `torchrun --standalone` picks
        max_restarts=0,
        monitor_interval=1,
        start_method="spawn",
    )
    results = elastic_launch(launch, _worker)(job, config, options, plan)
    outcomes = [results[rank] for rank in sorted(results)]
    for outcome in outcomes:
        if outcome.kind == "ClientError":
            raise ClientError(outcome.message)
    for outcome in outcomes:
        if outcome.kind == "Stopped":
            raise Stopped(outcome.signum)
        if outcome.kind:
            raise AlgorithmError(outcome.message)
    first = outcomes[0].result  # every process ends with the same result: fit's decisions follow global metrics
    assert first is not None
    return first


def _worker(job: Job, config: Config, options: RunOptions, plan: Plan) -> Outcome:
    """One process of a multi-process job (the launcher sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*)."""
    from semseg.cli import setup_logging

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    setup_logging()
    if rank != 0:  # the first process speaks for the job
        logging.getLogger().setLevel(logging.WARNING)
    device = torch.device("cuda", local) if plan.kind == "cuda" else torch.device("cpu")
    if plan.kind == "cuda":
        torch.cuda.set_device(device)
    else:  # the processes share the cores
        torch.set_num_threads(max(1, torch.get_num_threads() // plan.processes))
    dist.init_process_group(plan.backend)
    stop = StopFlag()
    try:
        with stop.installed():
            return Outcome(train_process(job, config, options, stop, device, rank, plan.processes))
    except Stopped as exc:
        return Outcome(None, "Stopped", str(exc), exc.signum)
    except JobError as exc:
        return Outcome(None, type(exc).__name__, exc.message)
    except Exception as exc:  # reported by the launcher's caller as an AlgorithmError
        log.exception("Training process %d failed", rank)
        return Outcome(None, "AlgorithmError", f"Training process {rank} failed: {type(exc).__name__}: {exc}")
    finally:
        dist.destroy_process_group()
