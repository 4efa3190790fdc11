"""Pipe mode on a host of several torch processes: the first process reads each FIFO and hands every process its
share of each batch (semseg.data.shared_fifo). What that feeding costs against File mode, where every process reads its
own files.

Measured: the same torch job (FCN ResNet-50, 24 training images, crop 96, global batch 4, 3 epochs) in 2 CPU
processes of 1 thread each (SEMSEG_CPU_DEVICES=2), its train channel in File mode and in Pipe mode (a writer
thread here fills one FIFO per pass, as SageMaker's agent does; validation in File mode in both); images/s of the
epochs after the first, as the job logs them. The ratio is the cost of reading the FIFO in the first process and
scattering the encoded pairs to the others.

The alternative the issue named, every process reading its own share of the channel, cannot exist: SageMaker
gives a host one FIFO per channel and pass, and a FIFO's bytes go to one reader. A reader in a process of its
own would move the same bytes one more hop.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import save, table
from benchmarks.fifo_writer import Writer
from semseg.data.recordio import frame
from semseg.example import make_job

HP = {"epochs": 3, "mini_batch_size": 4, "validation_mini_batch_size": 4, "crop_size": 96}
PIPE = {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO", "S3DistributionType": "FullyReplicated"}


def _job(work: Path, name: str, images: int, pipe: bool) -> tuple[Path, list[bytes]]:
    base = make_job(work / name, images=images, size=96, hyperparameters=HP)
    if not pipe:
        return base, []
    data = base / "input" / "data"
    masks = data / "train_annotation"
    records = [
        frame(image.read_bytes()) + frame((masks / f"{image.stem}.png").read_bytes())
        for image in sorted((data / "train").iterdir())
    ]
    for channel in ("train", "train_annotation"):
        shutil.move(str(data / channel), str(base / f"file-mode-{channel}"))
    config = {name: {"TrainingInputMode": "File"} for name in ("validation", "validation_annotation")}
    (base / "input" / "config" / "inputdataconfig.json").write_text(json.dumps({**config, "train": PIPE}))
    return base, records


def _run(base: Path, records: list[bytes]) -> float:
    """images/s of all processes over the epochs after the first."""
    if records:
        Writer(base / "input" / "data", HP["epochs"], lambda: records).start()
    env = {
        **os.environ,
        "SAGEMAKER_BASE_DIR": str(base),
        "SEMSEG_ENGINE": "torch",
        "SEMSEG_CPU_DEVICES": "2",
        "OMP_NUM_THREADS": "2",
        "SEMSEG_PIPE_TIMEOUT": "60",
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "semseg", "train"], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    log = done.stdout + done.stderr
    if done.returncode:
        raise RuntimeError(f"a benchmark job failed:\n{log[-3000:]}")
    return statistics.mean(float(v) for v in re.findall(r"train throughput: (\S+) samples/sec", log)[1:])


def main(work: Path, quick: bool = False) -> dict[str, Any]:
    images = 12 if quick else 24
    file_rate = _run(*_job(work, "processes-file", images, pipe=False))
    pipe_rate = _run(*_job(work, "processes-pipe", images, pipe=True))
    print(
        table(
            "Pipe mode in 2 torch processes of one host (the first feeds the other) vs File mode (images/s)",
            ["File", "Pipe", "ratio"],
            [[file_rate, pipe_rate, pipe_rate / file_rate]],
        )
    )
    result = {"file": file_rate, "pipe": pipe_rate, "ratio": pipe_rate / file_rate}
    save("pipe_processes", result)
    return result
