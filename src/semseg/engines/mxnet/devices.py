"""Which devices to train on: every usable GPU of the host, else the CPU; and the guard for GPUs this
MXNet build cannot use.

mxnet-cu117 1.9.1 carries GPU machine code for compute capability 5.0 to 8.6 and no PTX, so it runs on
5.x to 8.x GPUs (8.9, the L4 and L40S, runs the 8.6 code) and on nothing of 9.0 or newer (H100, H200).
The guard reads each visible GPU from nvidia-smi (mounted by the NVIDIA runtime) before any data or model
work and ends the job with a ClientError where no GPU-less surprise should follow: a GPU without code in
this build, or GPUs that the installed MXNet cannot use (the CPU image on a GPU instance). MXNet is asked for
its GPUs too, so a GPU host whose nvidia-smi is missing, fails or times out still trains on its GPUs (MXNet's
count decides) rather than silently on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.options import RunOptions
from semseg.engines.gpus import Gpu, check_precision, check_usable, devices_to_use, visible_gpus
from semseg.fit.memory import DeviceMemory, gpu_memory, host_memory

if TYPE_CHECKING:  # MXNet loads only where devices are selected: the server's parent process never loads it
    import mxnet as mx

log = logging.getLogger(__name__)

MIN_CAPABILITY = (5, 0)
MAX_CAPABILITY = (8, 9)  # the newest with code in this build (8.6, by compatibility within major 8)
WORKING_GPUS = "V100 (ml.p3), T4 (ml.g4dn), A10G (ml.g5), A100 (ml.p4d), L4 (ml.g6), L40S (ml.g6e)"


@dataclass(frozen=True)
class Devices:
    contexts: list[mx.Context]
    gpu: bool  # the contexts are GPUs


def check_supported(gpus: Sequence[Gpu]) -> None:
    """ClientError naming every GPU this MXNet build has no machine code for."""
    bad = [g for g in gpus if g.capability is not None and not MIN_CAPABILITY <= g.capability <= MAX_CAPABILITY]
    if not bad:
        return
    newer = any(g.capability is not None and g.capability > MAX_CAPABILITY for g in bad)
    advice = (
        "MXNet 1.9.1 (the last release; MXNet is archived) has no code for compute capability 9.0 or newer "
        "(H100 on ml.p5, H200, Blackwell on ml.p6 and ml.g7e): use the torch image (`make image-torch`, or docker "
        "build --build-arg FLAVOUR=torch --build-arg ENGINE=torch), whose PyTorch engine trains the same models "
        "and writes the same artifacts, or an instance with one of the working GPUs"
        if newer
        else "this GPU is older than MXNet 1.9.1 supports: use an instance with one of the working GPUs"
    )
    raise ClientError(
        f"{'; '.join(g.describe() for g in bad)}: this image's MXNet (CUDA 11.7 build) cannot run on it. "
        f"{advice}: {WORKING_GPUS}. Or train on the CPU image on a CPU instance."
    )


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
