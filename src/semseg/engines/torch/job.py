"""A training job on the PyTorch engine: the network, MXNet's update rules and the loop on this process's device,
handed to the shared job steps (semseg.fit.job) as a Session, with one process per GPU under
DistributedDataParallel (semseg.engines.torch.launch).

Every process trains its share of each batch; the first one of each host writes its host's log lines, the first
one of the first host the checkpoints and artifacts. Several hosts meet in torch.distributed's static
rendezvous (semseg.engines.torch.hosts), as SageMaker's PyTorch containers do.
"""

from __future__ import annotations

import logging
import tempfile
from functools import partial
from pathlib import Path

import torch
from torch import nn

import semseg.engines.torch.files as files
from semseg.contract.config import Config
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.seed_model import find_seed_model
from semseg.contract.signals import StopFlag, StopSignal
from semseg.data.pipeline import build_loaders
from semseg.distributed.stop import CollectiveStop, every_part
from semseg.engines.torch.devices import Place, configure_cuda, device_memory, plan_devices
from semseg.engines.torch.exchange import Exchange
from semseg.engines.torch.hosts import rendezvous, set_network_env
from semseg.engines.torch.launch import launch
from semseg.engines.torch.loader import torch_loader
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.optim import trainer_for
from semseg.engines.torch.predict import Precision
from semseg.engines.torch.state import State
from semseg.fit.class_weights import class_weights
from semseg.fit.job import Alone, Session, run_job, seed_everything
from semseg.fit.loop import FitResult, LoopSettings
from semseg.fit.memory import check_fits

log = logging.getLogger(__name__)


def train_job(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> FitResult:
    """The whole job on this host: in this process on one device, else in one process per device."""
    cluster = job.cluster
    share = cluster.batch_share(config.mini_batch_size)
    plan = plan_devices(config, options, share, cluster.size)  # the GPU checks, before any data or model work
    where = f"{plan.processes} GPU process(es)" if plan.kind == "cuda" else f"{plan.processes} CPU process(es)"
    hosts = f" on each of {cluster.size} hosts" if cluster.distributed else ""
    log.info("Engine: PyTorch %s, on %s%s", torch.__version__, where, hosts)
    check_fits(config, device_memory(config, plan))
    if cluster.distributed:
        set_network_env(cluster, plan.kind == "cuda")
        meet = rendezvous(cluster, options.master_port)
        log.info(
            "torch.distributed: host %s (node %d of %d), rendezvous at %s:%d",
            cluster.current_host, meet.node_rank, meet.nodes, meet.master, meet.port,
        )  # fmt: skip
        return launch(job, config, options, plan, train_process, stop, meet)
    if plan.processes == 1:
        device = torch.device("cuda", 0) if plan.kind == "cuda" else torch.device("cpu")
        return train_process(job, config, options, stop, device)
    return launch(job, config, options, plan, train_process, stop)


def train_process(
    job: Job,
    config: Config,
    options: RunOptions,
    stop: StopSignal,
    device: torch.device,
    place: Place | None = None,
    exchange: Exchange | None = None,
) -> FitResult:
    """The whole job in this process (or its share of it: process `place`, DDP set up by the caller, which
    hands over the `exchange` of all processes)."""
    place = place or Place()
    seed_everything(options.seed)
    torch.manual_seed(options.seed)
    on_gpu = device.type == "cuda"
    if on_gpu:
        configure_cuda(device)
    workers = options.workers_for(on_gpu)
    if on_gpu and place.local_world > 1:
        workers = max(1, workers // place.local_world)
    leader, report = place.rank == 0, place.local_rank == 0  # every process counts the same masks
    several_hosts = exchange is not None and place.world > place.local_world
    sum_counts = exchange.sum_host_counts if exchange is not None and several_hosts else None
    weights = class_weights(job, config, options.seed, leader=leader, report=report, sum_counts=sum_counts)
    make_loader = partial(torch_loader, pin=on_gpu)
    loaders = build_loaders(
        job, config, options.seed, workers, make_loader, shard=(place.rank, place.world),
        pipe=options.pipe(stop.local if isinstance(stop, CollectiveStop) else stop),  # a FIFO's reader thread
        local=(place.local_rank, place.local_world),
        agree_min=partial(exchange.agree_min, "batches") if exchange else None,
        all_have=every_part(exchange.allreduce, place.world) if exchange else None,
        scatter=exchange.scatter_on_host if exchange else None,
    )  # fmt: skip
    net = network(job, config, options.weights_root)
    model = _on_device(net, config, device, place.world)
    loop = Loop(model, trainer_for(net, config), device, LoopSettings.of(config, options.pixel_budget, weights))
    precision = loop.precision
    if precision.autocast is not None:
        log.info("Mixed precision: autocast to %s, float32 weights%s", precision.autocast, _scaler_note(precision))
    session = Session(
        loop, State(net, loop, config), loaders, _seed_torch, exchange=exchange or Alone(), leader=leader,
        report=report,
    )  # fmt: skip
    return run_job(job, config, options, stop, session)


def _on_device(net: SegmentationNet, config: Config, device: torch.device, processes: int) -> nn.Module:
    """`net` on `device` (channels-last on GPUs), and what trains it: itself, or its DDP wrapper."""
    on_gpu = device.type == "cuda"
    net.to(device)
    if on_gpu:
        net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # as benchmarks/gpu_torch.py measures
    model: nn.Module = net
    if processes > 1:
        if config.syncbn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device] if on_gpu else None)
    elif config.syncbn:
        log.info("syncbn=True: one process, BatchNorm already sees the whole batch")
    return model


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
            files.load_model_folder(net, find_seed_model(channel, Path(work), config))
    elif config.use_pretrained_model:
        files.load_backbone(net, config, weights_root)
    return net
