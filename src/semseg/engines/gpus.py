"""The GPUs a host has, as the driver lists them (nvidia-smi, mounted by the NVIDIA runtime), and the checks that
hold for either engine. No framework here: the server's parent process and both engines' guards use it before
any framework loads."""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from semseg.contract.config import Config
from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    capability: tuple[int, int] | None  # None: the driver is too old to report it

    def describe(self) -> str:
        cc = "unknown" if self.capability is None else f"{self.capability[0]}.{self.capability[1]}"
        return f"GPU {self.index} {self.name} (compute capability {cc})"


def visible_gpus(nvidia_smi: str = "nvidia-smi") -> list[Gpu]:
    """The GPUs the driver lists; none when nvidia-smi is absent or fails (no driver)."""
    path = shutil.which(nvidia_smi)
    if path is None:
        return []
    rows = _query(path, "index,name,compute_cap")
    if rows is None:  # drivers before 510 do not know compute_cap: names only, capability unknown
        rows = [[*row, ""] for row in _query(path, "index,name") or []]
    return [Gpu(int(row[0]), row[1], _capability(row[2])) for row in rows if len(row) >= 3 and row[0].isdigit()]


def driver_version(nvidia_smi: str = "nvidia-smi") -> int | None:
    """The major version of the host's NVIDIA driver (550 for 550.127.05); None without a driver or answer."""
    path = shutil.which(nvidia_smi)
    rows = _query(path, "driver_version") if path else None
    try:
        return int(rows[0][0].split(".")[0]) if rows else None
    except ValueError:
        return None


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


def check_usable(gpus: Sequence[Gpu], usable: int, framework: str, why: str, image: str, allow_cpu: bool) -> None:
    """The driver lists `gpus` but `framework` can use none of them (`usable`, `why`): a ClientError naming the
    `image` to use, unless `allow_cpu` (SEMSEG_ALLOW_CPU) lets the job train on the CPU, with a warning."""
    if not gpus or usable:
        return
    message = f"The driver lists {len(gpus)} GPU(s) ({gpus[0].describe()}) but {framework} cannot use them ({why})"
    if not allow_cpu:
        raise ClientError(
            f"{message}. Use {image} on GPU instances, or set the environment variable SEMSEG_ALLOW_CPU=true to "
            "train on the CPU anyway."
        )
    log.warning("%s. Training on the CPU (SEMSEG_ALLOW_CPU)", message)


def devices_to_use(available: int, share: int, batch: int) -> int:
    """How many of `available` devices (or processes) a host trains on: each needs at least one image of the host's
    `share` of mini_batch_size=`batch` (the host's part of the batch is split over them)."""
    if available > share:
        log.warning(
            "mini_batch_size=%d leaves %d image(s) a host for its %d devices: using %d of them",
            batch, share, available, share,
        )  # fmt: skip
    return min(available, share)


def check_precision(config: Config, *, on_gpu: bool) -> None:
    """precision_dtype=float16 (mixed precision) needs GPUs: a ClientError before any data work otherwise."""
    if config.precision_dtype == "float16" and not on_gpu:
        raise ClientError(
            "precision_dtype=float16 (mixed precision) needs GPUs, and this job trains on the CPU. "
            "Remove precision_dtype or set it to float32, or train on a GPU instance."
        )
