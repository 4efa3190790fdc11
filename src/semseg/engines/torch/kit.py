"""A training job on the PyTorch engine: this host's devices (after the GPU checks), one process per GPU under
DistributedDataParallel (semseg.engines.torch.launch), and the kit (the network, MXNet's update rules, the loop,
the state, the DataLoader) that the one job assembly (semseg.fit.assembly) trains with in each process.

Every process is one part of the job (semseg.distributed.part) and trains its share of each batch; the first one
of each host writes its host's log lines, the first one of the first host the checkpoints and artifacts. Several
hosts meet in torch.distributed's static rendezvous (semseg.engines.torch.rendezvous), as SageMaker's PyTorch
containers do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from semseg.contract.config import Config
from semseg.contract.job import Job
from semseg.contract.model_folder import ModelFolder
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag, StopSignal
from semseg.distributed.part import Part
from semseg.engines.torch.devices import configure_cuda, device_memory, select_devices
from semseg.engines.torch.gluon import load_backbone, load_model_folder
from semseg.engines.torch.launch import launch
from semseg.engines.torch.loader import Loader
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.nets import Network, build_network, trainable
from semseg.engines.torch.optim import trainer_for
from semseg.engines.torch.predict import Precision
from semseg.engines.torch.rendezvous import rendezvous, set_network_env
from semseg.engines.torch.state import State
from semseg.engines.weights import backbone_weights_file
from semseg.fit.assembly import Trained, Trainee, train_part
from semseg.fit.loop import LoopSettings
from semseg.fit.memory import check_fits

log = logging.getLogger(__name__)


def train_job(job: Job, config: Config, options: RunOptions, stop: StopFlag) -> Trained:
    """The whole job on this host: in this process on one device, else in one process per device."""
    cluster = job.cluster
    share = cluster.batch_share(config.mini_batch_size)
    devices = select_devices(config, options, share, cluster.size)  # the GPU checks, before any data or model work
    kind = "GPU" if devices.kind == "cuda" else "CPU"
    hosts = f" on each of {cluster.size} hosts" if cluster.distributed else ""
    log.info("Engine: PyTorch %s, on %d %s process(es)%s", torch.__version__, devices.processes, kind, hosts)
    check_fits(config, device_memory(config, devices))
    if cluster.distributed:
        set_network_env(cluster, devices.kind == "cuda")
        meet = rendezvous(cluster, options.master_port)
        log.info(
            "torch.distributed: host %s (node %d of %d), rendezvous at %s:%d",
            cluster.current_host, meet.node_rank, meet.nodes, meet.master, meet.port,
        )  # fmt: skip
        return launch(job, config, options, devices, train_process, stop, meet)
    if devices.processes == 1:
        device = torch.device("cuda", 0) if devices.kind == "cuda" else torch.device("cpu")
        return train_process(job, config, options, stop, device)
    return launch(job, config, options, devices, train_process, stop)


def train_process(
    job: Job, config: Config, options: RunOptions, stop: StopSignal, device: torch.device, part: Part | None = None
) -> Trained:
    """The whole job in this process, or its `part` of it (DDP set up by the caller, the part's exchange over all
    processes)."""
    part = part or Part()
    if device.type == "cuda":
        configure_cuda(device)
    return train_part(job, config, options, stop, Kit(config, options, device, part), part)


class Kit:
    """The PyTorch engine's parts of a job on `device` (semseg.fit.assembly.Kit), for process `part`."""

    def __init__(self, config: Config, options: RunOptions, device: torch.device, part: Part) -> None:
        self.config, self.options, self.device, self.part = config, options, device, part
        on_gpu = device.type == "cuda"
        workers = options.workers_for(on_gpu)
        if on_gpu and part.local_world > 1:  # the host's cores are shared by its GPUs' processes
            workers = max(1, workers // part.local_world)
        self.loader = Loader(workers, pin=on_gpu)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def fresh_network(self) -> Network:
        net = build_network(self.config)
        if self.config.use_pretrained_model:
            load_backbone(net, backbone_weights_file(self.config.backbone, self.options.weights_root))
        return trainable(net, self.config)

    def seed_network(self, model: ModelFolder) -> Network:
        net = build_network(self.config)
        load_model_folder(net, model)
        return trainable(net, self.config)

    def trainee(self, network: Callable[[], Network], settings: LoopSettings) -> Trainee:
        net = network()
        model = _on_device(net, self.config, self.device, self.part.world)
        loop = Loop(model, trainer_for(net, self.config), self.device, settings)
        precision = loop.precision
        if precision.autocast is not None:
            log.info("Mixed precision: autocast to %s, float32 weights%s", precision.autocast, _scaler_note(precision))
        return Trainee(loop, State(net, loop, self.config))


def _on_device(net: Network, config: Config, device: torch.device, processes: int) -> nn.Module:
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


def _scaler_note(precision: Precision) -> str:
    return ", dynamic loss scaling (this GPU has no bfloat16)" if precision.needs_scaler else ""
