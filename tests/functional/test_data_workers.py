"""Data-loading workers forked from a job's process do not keep the job's stop handler: it only sets a flag, so a
worker that inherited it would outlive the SIGTERM with which a process pool ends its workers (MXNet's DataLoader
does so when it is freed), and the pool would wait for it forever (seen: a job of MXNet's data workers that never
ended under pytest-xdist). MXNet forks its pool's workers as the loader is made: they must take SIGTERM's default
action and ignore SIGINT, read from each worker's /proc/<pid>/status. In a fresh process of its own (the test's
process has threads, which forking would copy in the middle of their work), in a session of its own, so that
whatever it leaves is ended with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

CODE = """
import gc, signal
from pathlib import Path
import numpy as np
from semseg.contract.signals import StopFlag
from semseg.engines.mxnet.loader import Loader

class Data:
    def __len__(self):
        return 8
    def __getitem__(self, key):
        return np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)

def mask(pid, field):
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith(field + ":"))
    return int(line.split()[1], 16)

with StopFlag().installed():
    loader = Loader(2).make(Data(), [[(i, 0) for i in range(4)], [(i, 0) for i in range(4, 8)]], 2)
    batches = len(list(loader))
    workers = [p.pid for p in loader._worker_pool._pool]
    term, intr = 1 << (signal.SIGTERM - 1), 1 << (signal.SIGINT - 1)
    print("job", bool(mask("self", "SigCgt") & term))
    for pid in workers:
        print("worker", bool(mask(pid, "SigCgt") & term), bool(mask(pid, "SigIgn") & intr))
    del loader
    gc.collect()
print("ended after", batches, "batches", flush=True)
"""


def test_mxnets_data_workers_take_sigterms_default_action_while_the_job_handles_it() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, out[-3000:]
    lines = out.splitlines()
    assert "job True" in lines, "the job's own process handles SIGTERM (the test reads the masks rightly)"
    assert [line for line in lines if line.startswith("worker")] == ["worker False True"] * 2, out
    assert "ended after 2 batches" in lines
