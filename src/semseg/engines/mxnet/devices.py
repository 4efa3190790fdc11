"""Which devices to train on: every usable GPU of the host, else the CPU, after the guard for GPUs this MXNet build
cannot use (semseg.engines.mxnet.support). The guard reads each visible GPU from nvidia-smi (mounted by the NVIDIA
runtime) before any data or model work and ends the job with a ClientError where no GPU-less surprise should follow:
a GPU without code in this build, or GPUs that the installed MXNet cannot use (the CPU image on a GPU instance).
MXNet is asked for its GPUs too, so a GPU host whose nvidia-smi is missing, fails or times out still trains on its
GPUs (MXNet's count decides) rather than silently on the CPU.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from semseg.contract.config import Config
from semseg.contract.options import RunOptions
from semseg.engines.gpus import Gpu, check_precision, check_usable, devices_to_use, visible_gpus
from semseg.engines.mxnet.support import check_supported
from semseg.fit.memory import DeviceMemory, gpu_memory, host_memory

if TYPE_CHECKING:  # MXNet loads only where devices are selected: the server's parent process never loads it
    import mxnet as mx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Devices:
    contexts: list[mx.Context]
    gpu: bool  # the contexts are GPUs


def mxnet_gpus() -> int:
    """The GPUs MXNet itself can use (0 with the CPU build), asked whatever nvidia-smi said."""
    import mxnet as mx

    try:
        return int(mx.context.num_gpus())
    except mx.base.MXNetError as exc:  # the CUDA runtime fails to start (a driver fault)
        log.warning("MXNet cannot count the GPUs: %s", str(exc).splitlines()[0])
        return 0


def select_devices(config: Config, options: RunOptions, share: int | None = None) -> Devices:
    """The training devices, after the guard: each needs an image of this host's `share` of mini_batch_size
    (semseg.contract.cluster.Cluster.batch_share; all of it on one host)."""
    import mxnet as mx

    share = config.mini_batch_size if share is None else share
    if options.cpu_devices:
        contexts = [mx.cpu(i) for i in range(devices_to_use(options.cpu_devices, share, config.mini_batch_size))]
        log.info("Training data-parallel on %d CPU contexts (SEMSEG_CPU_DEVICES)", len(contexts))
        check_precision(config, on_gpu=False)
        return Devices(contexts, gpu=False)
    gpus = visible_gpus()
    check_supported(gpus)
    usable = mxnet_gpus()
    if usable and not gpus:
        log.warning(
            "nvidia-smi lists no GPU (missing, failed or timed out) but MXNet sees %d: training on them, without "
            "the check of their compute capability", usable,
        )  # fmt: skip
        gpus = [Gpu(i, "(not listed by nvidia-smi)", None) for i in range(usable)]
    why = "it is the CPU image, or the CUDA libraries do not load"
    check_usable(gpus, usable, "this image's MXNet", why, "the GPU image", options.allow_cpu)
    count = devices_to_use(min(len(gpus), usable), share, config.mini_batch_size)
    log.info("Number of GPUs being used: %d", count)
    devices = Devices([mx.gpu(i) for i in range(count)], gpu=True) if count else Devices([mx.cpu()], gpu=False)
    check_precision(config, on_gpu=devices.gpu)
    return devices


def device_memory(config: Config, devices: Devices, hosts: int = 1) -> DeviceMemory:
    """What one device holds at once, and its memory (the host's for CPU contexts, which share it)."""
    import mxnet as mx

    count = len(devices.contexts)
    if not devices.gpu:
        return host_memory(config, devices=count, hosts=hosts)
    _free, total = mx.context.gpu_memory_info(devices.contexts[0].device_id)
    return gpu_memory(config, int(total), count, hosts)
