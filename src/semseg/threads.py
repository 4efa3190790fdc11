"""CPU threads for the runtimes' OpenMP kernels (MXNet's, PyTorch's, OpenVINO's and ONNX Runtime's: the training
process and each server worker), chosen before any of them is loaded.

Without OMP_NUM_THREADS, MXNet 1.x on x86 uses half of the CPUs it sees (src/engine/openmp.cc assumes
every core runs two hyperthreads). Where cores have one thread (many cloud VMs and containers) that leaves
half of the machine idle: training on 2 such cores used only one of them. So, unless the user set
OMP_NUM_THREADS, it is set to the physical cores this process may use: its CPU affinity, one per core
(hyperthread siblings counted once), at most the container's CPU quota. On hyperthreaded hosts this is
the number MXNet would have chosen.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, MutableMapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "OMP_NUM_THREADS"
SYS_CPU = Path("/sys/devices/system/cpu")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "<quota> <period>" or "max <period>"
CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def physical_cores(cpus: Iterable[int], sys_cpu: Path = SYS_CPU) -> int:
    """Distinct cores among `cpus` (CPU numbers); a CPU whose topology cannot be read counts as a core."""
    cores: set[str] = set()
    for cpu in cpus:
        try:  # the same text ("0,4" or "0-1") for every hyperthread of a core
            cores.add((sys_cpu / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            cores.add(f"cpu{cpu}")
    return max(1, len(cores))


def cpu_quota(
    cpu_max: Path = CGROUP_CPU_MAX, v1_quota: Path = CGROUP_V1_QUOTA, v1_period: Path = CGROUP_V1_PERIOD
) -> int | None:
    """The container's CPU limit rounded up (`docker run --cpus 1.5` -> 2), or None when unlimited."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(v1_quota.read_text())
        if quota_us > 0:
            return max(1, math.ceil(quota_us / int(v1_period.read_text())))
    except (OSError, ValueError):
        pass
    return None


def recommended_threads(
    cpus: Iterable[int] | None = None,
    sys_cpu: Path = SYS_CPU,
    cgroup: tuple[Path, Path, Path] = (CGROUP_CPU_MAX, CGROUP_V1_QUOTA, CGROUP_V1_PERIOD),
) -> int:
    """Physical cores among `cpus` (default: this process's affinity), at most the cgroup's CPU quota."""
    if cpus is None:
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    threads = physical_cores(cpus, sys_cpu)
    quota = cpu_quota(*cgroup)
    return min(threads, quota) if quota else threads


def configure_openmp(environ: MutableMapping[str, str], threads: int | None = None) -> str:
    """Set OMP_NUM_THREADS in `environ` (the process environment, at process start) unless set: to `threads`,
    else one per physical core available; return what it is now.

    Only takes effect when called before MXNet is imported (OpenMP reads it once, at start).
    """
    if environ.get(ENV):
        log.info("OpenMP threads: %s (OMP_NUM_THREADS from the environment)", environ[ENV])
        return environ[ENV]
    if threads is not None:
        environ[ENV] = str(threads)
        log.info("OpenMP threads: %s (OMP_NUM_THREADS overrides)", environ[ENV])
        return environ[ENV]
    environ[ENV] = str(recommended_threads())
    log.info("OpenMP threads: %s, one per physical core available (OMP_NUM_THREADS overrides)", environ[ENV])
    return environ[ENV]
