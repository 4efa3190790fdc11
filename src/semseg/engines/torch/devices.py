"""Which devices the PyTorch engine trains on: every GPU PyTorch can use (one process each), else the CPU
(SEMSEG_CPU_DEVICES=N: N CPU processes over gloo, to exercise the multi-process path without GPUs)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.options import RunOptions
from semseg.engines.gpus import check_precision, check_usable, devices_to_use, visible_gpus
from semseg.engines.torch.support import IMAGE, check_host
from semseg.fit.memory import DeviceMemory, gpu_memory, host_memory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Devices:
    """The devices of this host: `processes` of `kind` (one per GPU), on each of `hosts`."""

    kind: str  # "cuda" or "cpu"
    processes: int  # on this host
    hosts: int = 1

    @property
    def backend(self) -> str:
        return "nccl" if self.kind == "cuda" else "gloo"

    @property
    def world(self) -> int:
        return self.processes * self.hosts


def select_devices(config: Config, options: RunOptions, share: int | None = None, hosts: int = 1) -> Devices:
    """One process per GPU (or per SEMSEG_CPU_DEVICES slot, or one) on each of `hosts`, each with at least one
    image of the host's `share` of mini_batch_size (semseg.contract.cluster.Cluster.batch_share)."""
    share = config.mini_batch_size if share is None else share
    if options.cpu_devices:
        processes = devices_to_use(options.cpu_devices, share, config.mini_batch_size)
        log.info("Training data-parallel in %d CPU processes (SEMSEG_CPU_DEVICES)", processes)
        check_precision(config, on_gpu=False)
        return Devices("cpu", processes, hosts)
    gpus = visible_gpus()
    check_host(gpus)  # before CUDA starts: a GPU without code, or a driver too old
    usable = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if usable:
        _check_arch()
        count = devices_to_use(usable, share, config.mini_batch_size)
        log.info("Number of GPUs being used: %d (%s)", count, torch.cuda.get_device_name(0))
        return Devices("cuda", count, hosts)
    why = f"torch {torch.__version__}, CUDA {torch.version.cuda}"
    check_usable(gpus, 0, "PyTorch", why, IMAGE, options.allow_cpu)
    check_precision(config, on_gpu=False)
    return Devices("cpu", 1, hosts)


def _check_arch() -> None:
    """ClientError for a GPU this torch build has no code (or PTX) for."""
    built = torch.cuda.get_arch_list()
    for index in range(torch.cuda.device_count()):
        major, minor = torch.cuda.get_device_capability(index)
        cubins = {f"sm_{major}{minor}"} | {f"sm_{major}{m}" for m in range(minor)}
        ptx = [a for a in built if a.startswith("compute_") and int(a[8:].rstrip("a")) <= major * 10 + minor]
        if not cubins & set(built) and not ptx:
            raise ClientError(
                f"GPU {index} {torch.cuda.get_device_name(index)} (compute capability {major}.{minor}) has no code "
                f"in this PyTorch build (built for {', '.join(built)}). Use an image with a newer PyTorch."
            )


def configure_cuda(device: torch.device) -> None:
    """`device` this process's GPU, cuDNN autotuning (the crop size is fixed, so the search pays once; the server
    predicts at a few sizes) and TF32 for float32 convolutions: training's and serving's settings."""
    torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def device_memory(config: Config, devices: Devices) -> DeviceMemory:
    """What one device holds at once, and its memory (the host's for CPU processes, which share it)."""
    if devices.kind == "cpu":
        return host_memory(config, devices=devices.processes, hosts=devices.hosts, processes=devices.processes)
    return gpu_memory(config, int(torch.cuda.get_device_properties(0).total_memory), devices.processes, devices.hosts)
