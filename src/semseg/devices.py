"""Which devices to train on: every usable GPU of the host, else the CPU; and the guard for GPUs this
MXNet build cannot use.

mxnet-cu117 1.9.1 carries GPU machine code for compute capability 5.0 to 8.6 and no PTX, so it runs on
5.x to 8.x GPUs (8.9, the L4 and L40S, runs the 8.6 code) and on nothing of 9.0 or newer (H100, H200).
The guard reads each visible GPU from nvidia-smi (mounted by the NVIDIA runtime) before any data or model
work and ends the job with a ClientError where no GPU-less surprise should follow: a GPU without code in
this build, or GPUs that the installed MXNet cannot use (the CPU image on a GPU instance).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from semseg.config import Config
from semseg.errors import ClientError
from semseg.options import RunOptions

if TYPE_CHECKING:  # MXNet loads only where devices are selected: the server's parent process never loads it
    import mxnet as mx

log = logging.getLogger(__name__)

MIN_CAPABILITY = (5, 0)
MAX_CAPABILITY = (8, 9)  # the newest with code in this build (8.6, by compatibility within major 8)
WORKING_GPUS = "V100 (ml.p3), T4 (ml.g4dn), A10G (ml.g5), A100 (ml.p4d), L4 (ml.g6), L40S (ml.g6e)"
NVIDIA_SMI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: tuple[int, int] | None  # None: the driver is too old to report it

    def describe(self) -> str:
        cc = "unknown" if self.capability is None else f"{self.capability[0]}.{self.capability[1]}"
        return f"GPU {self.index} {self.name} (compute capability {cc})"


@dataclass(frozen=True)
class Devices:
    contexts: list[mx.Context]
    gpu: bool  # the contexts are GPUs


def visible_gpus(nvidia_smi: str = "nvidia-smi") -> list[Gpu]:
    """The GPUs the driver lists; none when nvidia-smi is absent or fails (no driver)."""
    path = shutil.which(nvidia_smi)
    if path is None:
        return []
    rows = _query(path, "index,name,compute_cap")
    if rows is None:  # drivers before 510 do not know compute_cap: names only, capability unknown
        rows = [[*row, ""] for row in _query(path, "index,name") or []]
    return [Gpu(int(row[0]), row[1], _capability(row[2])) for row in rows if len(row) >= 3 and row[0].isdigit()]


def _query(path: str, fields: str) -> list[list[str]] | None:
    """nvidia-smi's rows for `fields`; None when it refuses the query, [] when it cannot run."""
    try:
        done = subprocess.run(
            [path, f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("nvidia-smi failed (%s): assuming no GPUs", exc)
        return []
    if done.returncode != 0:
        log.warning("nvidia-smi --query-gpu=%s exited %d: %s", fields, done.returncode, done.stderr.strip()[:200])
        return None
    return [[part.strip() for part in line.split(",")] for line in done.stdout.splitlines() if line.strip()]


def _capability(text: str) -> tuple[int, int] | None:
    try:
        major, minor = text.split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def check_supported(gpus: Sequence[Gpu]) -> None:
    """ClientError naming every GPU this MXNet build has no machine code for."""
    bad = [g for g in gpus if g.capability is not None and not MIN_CAPABILITY <= g.capability <= MAX_CAPABILITY]
    if not bad:
        return
    newer = any(g.capability is not None and g.capability > MAX_CAPABILITY for g in bad)
    advice = (
        "MXNet 1.9.1 (the last release; MXNet is archived) has no code for compute capability 9.0 or newer "
        "(H100 on ml.p5, H200): use the Hopper image (`make image-hopper`, or docker build --build-arg "
        "FLAVOUR=hopper --build-arg ENGINE=torch), whose PyTorch engine trains the same models and writes the "
        "same artifacts, or an instance with one of the working GPUs"
        if newer
        else "this GPU is older than MXNet 1.9.1 supports: use an instance with one of the working GPUs"
    )
    raise ClientError(
        f"{'; '.join(g.describe() for g in bad)}: this image's MXNet (CUDA 11.7 build) cannot run on it. "
        f"{advice}: {WORKING_GPUS}. Or train on the CPU image on a CPU instance."
    )


def select_devices(config: Config, options: RunOptions) -> Devices:
    """The training devices, after the guard."""
    import mxnet as mx

    if options.cpu_devices:
        contexts = [mx.cpu(i) for i in range(min(options.cpu_devices, config.mini_batch_size))]
        log.info("Training data-parallel on %d CPU contexts (SEMSEG_CPU_DEVICES)", len(contexts))
        return _checked(config, Devices(contexts, gpu=False))
    gpus = visible_gpus()
    check_supported(gpus)
    usable = mx.context.num_gpus() if gpus else 0
    if gpus and not usable:
        message = (
            f"The driver lists {len(gpus)} GPU(s) ({gpus[0].describe()}) but this image's MXNet cannot use them "
            "(it is the CPU image, or the CUDA libraries do not load)."
        )
        if not options.allow_cpu:
            raise ClientError(
                f"{message} Use the GPU image on GPU instances, or set the environment variable "
                "SEMSEG_ALLOW_CPU=true to train on the CPU anyway."
            )
        log.warning("%s Training on the CPU (SEMSEG_ALLOW_CPU)", message)
    count = min(len(gpus), usable)
    if count > config.mini_batch_size:
        log.warning(
            "mini_batch_size=%d is smaller than the %d GPUs: using %d of them",
            config.mini_batch_size,
            count,
            config.mini_batch_size,
        )
        count = config.mini_batch_size
    log.info("Number of GPUs being used: %d", count)
    devices = Devices([mx.gpu(i) for i in range(count)], gpu=True) if count else Devices([mx.cpu()], gpu=False)
    return _checked(config, devices)


def _checked(config: Config, devices: Devices) -> Devices:
    if config.precision_dtype == "float16" and not devices.gpu:
        raise ClientError(
            "precision_dtype=float16 (mixed precision) needs GPUs, and this job trains on the CPU. "
            "Remove precision_dtype or set it to float32, or train on a GPU instance."
        )
    return devices
