"""Whether a job's step can fit its device's memory, checked before any data work, the same for both engines.

A training step needs about FIXED_BYTES (framework, weights, gradients, optimizer states) plus
BYTES_PER_PIXEL[network][0] for every pixel of every image the device trains on at once (crop_size squared times
the images per device); float16 halves the activations. A validation pass needs BYTES_PER_PIXEL[network][1] per
pixel of the images it scores at once (whole-image validation: counted at crop_size, a lower bound). The
constants were measured by `python -m benchmarks memory` (peak resident memory of MXNet on the CPU, float32,
two sizes per network, each in a fresh process; benchmarks/RESULTS.md). GPU memory was not measured (no GPU was
at hand): it holds the same tensors, and the margin below covers the difference.

A job is refused only when SAFETY times the estimate does not fit, so the check never refuses a job that fits;
it catches what clearly cannot (a crop_size of 10000, a batch of 500 on one GPU) with a ClientError naming the
values and the largest that fit, instead of an out-of-memory kill after the data was read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from semseg.contract.config import OUTPUT_STRIDE, Config
from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

GIB = 2**30
FIXED_BYTES = 512 * 2**20  # below every network's measured fixed part (531 MB to 1.3 GB)
# float32 bytes per image pixel: (a training step, a validation pass)
BYTES_PER_PIXEL: dict[tuple[str, str], tuple[float, float]] = {
    ("fcn", "resnet-50"): (7700.0, 2300.0),
    ("fcn", "resnet-101"): (12900.0, 1800.0),
    ("psp", "resnet-50"): (13100.0, 1400.0),
    ("psp", "resnet-101"): (16700.0, 1600.0),
    ("deeplab", "resnet-50"): (13500.0, 1200.0),
    ("deeplab", "resnet-101"): (18400.0, 1700.0),
    ("deeplabv3plus", "resnet-50"): (13300.0, 2300.0),  # training: deeplab's x its ratio in one run (2026-12-05)
    ("deeplabv3plus", "resnet-101"): (18500.0, 1100.0),
    # DINOv2 (torch engine): measured with torch on the CPU at 224x224 crops (2026-12-06, tests' method, one
    # process each), fine-tuned; a frozen backbone (the default) needs about a quarter (see docs/training.md).
    # Attention grows with the square of the tokens: at crops past 518 the per-pixel need rises.
    ("linear", "dinov2-small"): (2400.0, 700.0),
    ("linear", "dinov2-base"): (6200.0, 900.0),
    ("fcn", "dinov2-small"): (2600.0, 700.0),
    ("fcn", "dinov2-base"): (6100.0, 800.0),
    ("psp", "dinov2-small"): (2600.0, 700.0),
    ("psp", "dinov2-base"): (6600.0, 900.0),  # psp and deeplab on dinov2-base: fcn's plus psp-small's share
    ("deeplab", "dinov2-small"): (2800.0, 700.0),  # deeplab: fcn's plus 10% (not measured)
    ("deeplab", "dinov2-base"): (6700.0, 900.0),
}
FLOAT16_SHARE = 0.5  # float16 activations
SAFETY = 0.5  # refuse only when half the estimate does not fit


@dataclass(frozen=True)
class DeviceMemory:
    """One device's memory and what it holds at once."""

    total_bytes: int
    what: str  # e.g. "GPU 0 (16.0 GiB)", "the host's memory (24.0 GiB)"
    images: int  # training images on it at once
    validation_images: int
    copies: int = 1  # training processes sharing it (the torch engine's CPU processes)
    devices: int = 1  # devices the batch is split over


def check_fits(config: Config, memory: DeviceMemory) -> None:
    """ClientError when the step clearly cannot fit `memory` (see the module's text)."""
    need = max(_training(config, memory.images, memory.copies), _validation(config, memory))
    log.info("Memory: one step needs about %.1f GiB of %s (estimate: semseg.fit.memory)", need / GIB, memory.what)
    if SAFETY * need <= memory.total_bytes:
        return
    raise ClientError(
        f"crop_size={config.crop_size} with {memory.images} training image(s) and {memory.validation_images} "
        f"validation image(s) at once on one device (mini_batch_size={config.mini_batch_size}, "
        f"validation_mini_batch_size={config.validation_mini_batch_size}, {memory.devices} device(s)) needs about "
        f"{need / GIB:.1f} GiB for {config.algorithm} {config.backbone} ({config.precision_dtype}); "
        f"{memory.what} cannot hold even half of that. {_largest(config, memory)} Or use a device with more memory."
    )


def _per_pixel(config: Config) -> tuple[float, float]:
    """Bytes per image pixel of a training step and of a validation pass, at the job's precision."""
    share = FLOAT16_SHARE if config.precision_dtype == "float16" else 1.0
    train, validate = BYTES_PER_PIXEL[(config.algorithm, config.backbone)]
    return train * share, validate * share


def _training(config: Config, images: int, copies: int) -> float:
    return copies * FIXED_BYTES + _per_pixel(config)[0] * config.crop_size**2 * images


def _validation(config: Config, memory: DeviceMemory) -> float:
    pixels = config.crop_size**2 * memory.validation_images
    return memory.copies * FIXED_BYTES + _per_pixel(config)[1] * pixels


def _largest(config: Config, memory: DeviceMemory) -> str:
    """The largest crop_size and batches that pass the check, as advice."""
    room = memory.total_bytes / SAFETY - memory.copies * FIXED_BYTES
    if room <= 0:
        return "Even the network's weights do not fit."
    train, validate = _per_pixel(config)
    heaviest = max(train * memory.images, validate * memory.validation_images)
    crop = int(math.sqrt(room / heaviest)) // OUTPUT_STRIDE * OUTPUT_STRIDE
    images = int(room / (train * config.crop_size**2))
    validation = int(room / (validate * config.crop_size**2))
    return (
        f"The largest that fit: crop_size={crop} at these batches, or at crop_size={config.crop_size} "
        f"{images} training and {validation} validation image(s) per device."
    )


def host_memory_bytes() -> int:
    """The memory this process may use: the host's, or its container's limit (cgroup) when lower."""
    limits = [_meminfo_total()]
    for path in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    return min(limit for limit in limits if limit > 0)


def _meminfo_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2**62  # unknown: nothing is refused


def gpu_memory(config: Config, total_bytes: int, devices: int, hosts: int = 1) -> DeviceMemory:
    """GPU 0 of `devices` per host (of `hosts`): its share of both batches."""
    per_host = -(-config.mini_batch_size // hosts)
    return DeviceMemory(
        total_bytes, f"GPU 0 ({total_bytes / GIB:.1f} GiB)", -(-per_host // devices),
        -(-config.validation_mini_batch_size // devices), devices=devices * hosts,
    )  # fmt: skip


def host_memory(config: Config, devices: int = 1, hosts: int = 1, processes: int = 1) -> DeviceMemory:
    """The host's memory, shared by all its CPU devices (contexts or processes): the host's whole share of both
    batches, and the weights of each of its `processes`."""
    total = host_memory_bytes()
    return DeviceMemory(
        total, f"the host's memory ({total / GIB:.1f} GiB)", -(-config.mini_batch_size // hosts),
        config.validation_mini_batch_size, copies=processes, devices=devices * hosts,
    )  # fmt: skip
