"""OpenMP thread count: physical cores in the affinity set, capped by the container's CPU quota."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from semseg import threads


def fake_sys_cpu(root: Path, siblings: dict[int, str]) -> Path:
    for cpu, text in siblings.items():
        folder = root / f"cpu{cpu}" / "topology"
        folder.mkdir(parents=True)
        (folder / "thread_siblings_list").write_text(text + "\n")
    return root


def test_hyperthreads_of_one_core_count_once(tmp_path: Path) -> None:
    sys_cpu = fake_sys_cpu(tmp_path, {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    assert threads.physical_cores([0, 1, 2, 3], sys_cpu) == 2
    assert threads.physical_cores([0, 2], sys_cpu) == 1


def test_cores_without_hyperthreads_all_count(tmp_path: Path) -> None:
    sys_cpu = fake_sys_cpu(tmp_path, {0: "0", 1: "1"})
    assert threads.physical_cores([0, 1], sys_cpu) == 2


def test_unreadable_topology_counts_each_cpu(tmp_path: Path) -> None:
    assert threads.physical_cores([0, 1, 5], tmp_path / "missing") == 3


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("max 100000", None), ("150000 100000", 2), ("100000 100000", 1), ("50000 100000", 1), ("garbage", None)],
)
def test_cgroup_v2_quota(tmp_path: Path, cpu_max: str, expected: int | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    assert threads.cpu_quota(tmp_path / "cpu.max", tmp_path / "none", tmp_path / "none") == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", None), ("250000", 3)])
def test_cgroup_v1_quota(tmp_path: Path, quota: str, expected: int | None) -> None:
    (tmp_path / "quota").write_text(quota)
    (tmp_path / "period").write_text("100000")
    assert threads.cpu_quota(tmp_path / "missing", tmp_path / "quota", tmp_path / "period") == expected


def test_a_users_setting_is_kept() -> None:
    environ = {"OMP_NUM_THREADS": "3"}
    assert threads.configure_openmp(environ) == "3" and environ == {"OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize(("cpu_max", "expected"), [("max 100000", 2), ("100000 100000", 1)])
def test_recommended_is_physical_cores_capped_by_the_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    sys_cpu = fake_sys_cpu(tmp_path / "cpu", {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"})
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    cgroup = (tmp_path / "cpu.max", tmp_path / "none", tmp_path / "none")
    assert threads.recommended_threads([0, 1, 2, 3], sys_cpu, cgroup) == expected


def test_unset_is_set_to_a_count_within_the_machine() -> None:
    environ: dict[str, str] = {}
    assert threads.configure_openmp(environ) == environ["OMP_NUM_THREADS"]
    assert 1 <= int(environ["OMP_NUM_THREADS"]) <= (os.cpu_count() or 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_the_train_entry_point_sets_it_before_mxnet_loads(tmp_path: Path) -> None:
    """In a fresh process pinned to one CPU, `train` sets OMP_NUM_THREADS=1 before anything imports MXNet."""
    one_cpu = min(os.sched_getaffinity(0))
    code = (  # pinned first thing (not by preexec_fn, which is unsafe in a process with threads, as pytest-xdist's)
        "import os, sys\n"
        f"os.sched_setaffinity(0, {{{one_cpu}}})\n"
        "from semseg.cli import main\n"
        f"main(['train'], {{'SAGEMAKER_BASE_DIR': {str(tmp_path)!r}}})\n"
        "print('OMP', os.environ.get('OMP_NUM_THREADS'), 'mxnet' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "OMP 1 False" in out
