"""Job overhead of a real `train` process (resnet-50 FCN with ImageNet weights from the local store):
time from process start to the first training iteration, from the end of the last epoch to the artifacts
written, and peak resident memory. Reference: the same process doing nothing but importing MXNet+GluonCV."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mxnet as mx
from gluoncv.model_zoo import resnet50_v1s
from gluoncv.model_zoo.model_store import short_hash

from benchmarks.common import save, table
from semseg.example import make_job


def fake_weights(home: Path) -> None:
    net = resnet50_v1s(pretrained=False)
    net.initialize()
    net(mx.nd.zeros((1, 3, 32, 32)))
    (home / "models").mkdir(parents=True, exist_ok=True)
    net.save_parameters(str(home / "models" / f"resnet50_v1s-{short_hash('resnet50_v1s')}.params"))


def run_job(base: Path, home: Path) -> dict[str, float]:
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "MXNET_HOME": str(home),
        "SEMSEG_PROGRESS_EVERY": "1",
        "PYTHONUNBUFFERED": "1",
    }
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "semseg", "train"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    marks: dict[str, float] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - start
        if "Training starts at epoch" in line:
            marks["setup_done"] = now  # network built, weights loaded; not yet traced or run
        if "#progress_notice" in line and "first_iteration" not in marks:
            marks["first_iteration"] = now  # the first training step has finished (SEMSEG_PROGRESS_EVERY=1)
        if "validation mIOU" in line:
            marks["last_epoch_end"] = now
    proc.wait()
    marks["exit"] = time.perf_counter() - start
    assert proc.returncode == 0, "benchmark job failed"
    return marks


def imports_only() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import mxnet, semseg.engines.mxnet.gluoncv_import"], check=True)
    return time.perf_counter() - start


def main(work: Path, quick: bool = False) -> dict[str, Any]:
    home = work / "mxnet"
    fake_weights(home)
    base = make_job(
        work / "overhead-job",
        images=4,
        size=240,
        hyperparameters={"epochs": 1, "mini_batch_size": 4, "use_pretrained_model": "True"},
    )
    marks = run_job(base, home)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    baseline = imports_only()
    result = {
        "start_to_setup_done_s": marks["setup_done"],
        "start_to_first_iteration_s": marks["first_iteration"],
        "imports_only_s": baseline,
        "last_epoch_to_artifacts_s": marks["exit"] - marks["last_epoch_end"],
        "peak_rss_mib": peak_mib,
    }
    print(
        table(
            "Job overhead, resnet-50 FCN, crop 240, pretrained backbone from the local store",
            ["measure", "value"],
            [
                ["a process that only imports MXNet + GluonCV (s)", baseline],
                ["start -> set-up done: data listed, network and weights loaded (s)", result["start_to_setup_done_s"]],
                ["start -> first training iteration done (s)", result["start_to_first_iteration_s"]],
                ["last epoch -> artifacts written, incl. export (s)", result["last_epoch_to_artifacts_s"]],
                ["peak resident memory (MiB)", peak_mib],
            ],
        )
    )
    ok = result["start_to_first_iteration_s"] <= 15
    print(
        f"goal: time to first iteration <= 15 s -> {result['start_to_first_iteration_s']:.1f} s "
        f"{'met' if ok else 'MISSED'}\n"
    )
    save("overhead", {"result": result, "goal_s": 15})
    return result
