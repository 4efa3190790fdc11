"""Pipe mode's input: throughput against File mode on the same images, and peak memory as the stream grows.

Throughput: the same VOC-sized JPEGs and masks through the same training transform (GluonCV's, crop 480)
and the same MXNet DataLoader (in-process decoding, as on the CPU): File mode reads the files, Pipe mode
reads their RecordIO records from a FIFO that a writer thread fills, as SageMaker's agent does.

Memory: a fresh process reads one pass of a FIFO of N pairs through the whole Pipe-mode loader; the
writer, in this process, makes the records on the fly, so only the reader's own memory is measured (peak
resident set, ru_maxrss). Holding the stream would cost ~N x 90 KB.
"""

from __future__ import annotations

import io
import multiprocessing
import resource
from pathlib import Path
from typing import Any

import numpy as np
from mxnet.gluon.data import DataLoader
from PIL import Image

from benchmarks.common import alternate, median, rate, save, table
from benchmarks.fifo_writer import Writer
from benchmarks.input_pipeline import BASE_SIZE, make_images
from semseg.contract.options import PipeSettings
from semseg.data.dataset import SegmentationDataset
from semseg.data.labels import identity
from semseg.data.recordio import frame
from semseg.data.samplers import SeededBatchSampler
from semseg.data.stream import PipeBatches, StreamDataset
from semseg.data.transforms import gluoncv_train, seed_train

GROWTH_GOAL = 0.10


def pipe_batches(folder: Path, batch: int) -> PipeBatches:
    return PipeBatches(folder, "train", batch, shuffle=True, drop_last=True, seed=0, settings=PipeSettings(60))


def throughput(work: Path, quick: bool) -> dict[str, Any]:
    pairs = make_images(work / "pipe-images", 16 if quick else 48)
    rounds, batch = (2 if quick else 3), 4
    transform = gluoncv_train(480, BASE_SIZE)
    file_loader = DataLoader(
        SegmentationDataset(pairs, identity(21), transform),
        batch_sampler=SeededBatchSampler(len(pairs), batch, shuffle=True, drop_last=True, seed=0),
    )
    records = [frame(p.image.read_bytes()) + frame(p.mask.read_bytes()) for p in pairs]
    folder = work / "pipe-fifos"
    folder.mkdir()
    writer = Writer(folder, rounds, lambda: records)
    writer.start()
    sampler = pipe_batches(folder, batch)
    pipe_loader = DataLoader(StreamDataset(identity(21), transform), batch_sampler=sampler)

    def run(loader: DataLoader) -> int:
        return sum(images.shape[0] for images, _ in loader)

    rates = alternate(
        {"file": lambda: rate(lambda: run(file_loader)), "pipe": lambda: rate(lambda: run(pipe_loader))}, rounds
    )
    writer.join()
    file_rate, pipe_rate = median(rates["file"]), median(rates["pipe"])
    return {"file": file_rate, "pipe": pipe_rate, "ratio": pipe_rate / file_rate, "runs": rates}


def _noise_pair(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    image, mask = io.BytesIO(), io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(image, "JPEG", quality=90)
    Image.fromarray(rng.integers(0, 21, (256, 256), dtype=np.uint8)).save(mask, "PNG")
    return frame(image.getvalue()) + frame(mask.getvalue())


def _read_one_pass(folder: str, results: Any) -> None:
    loader = DataLoader(StreamDataset(identity(21), seed_train(128)), batch_sampler=pipe_batches(Path(folder), 8))
    pairs = sum(images.shape[0] for images, _ in loader)
    results.put((pairs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def peak_memory(work: Path, pairs: int) -> dict[str, Any]:
    folder = work / f"pipe-memory-{pairs}"
    folder.mkdir()
    distinct = [_noise_pair(seed) for seed in range(20)]
    writer = Writer(folder, 1, lambda: (distinct[i % len(distinct)] for i in range(pairs)))
    writer.start()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    reader = context.Process(target=_read_one_pass, args=(str(folder), results))
    reader.start()
    read, peak = results.get(timeout=600)
    reader.join()
    writer.join()
    return {"pairs": pairs, "read": read, "stream_mb": pairs * len(distinct[0]) / 2**20, "peak_rss_mb": peak / 2**20}


def main(work: Path, quick: bool = False) -> dict[str, Any]:
    speed = throughput(work, quick)
    small, large = (peak_memory(work, n) for n in (200, 2000))
    growth = large["peak_rss_mb"] / small["peak_rss_mb"] - 1
    print(
        table(
            "Pipe mode input (images/s, one process; decode + GluonCV augmentation, crop 480), File vs Pipe",
            ["file", "pipe", "ratio"],
            [[speed["file"], speed["pipe"], speed["ratio"]]],
        )
    )
    print(f"goal: pipe >= file -> {speed['ratio']:.2f}x {'met' if speed['ratio'] >= 1.0 else 'MISSED'}\n")
    print(
        table(
            "Pipe mode peak resident memory of the reading process (MB) as the stream grows",
            ["pairs", "stream MB", "peak RSS MB"],
            [[r["pairs"], r["stream_mb"], r["peak_rss_mb"]] for r in (small, large)],
        )
    )
    print(f"goal: growth < {GROWTH_GOAL:.0%} -> {growth:+.1%} {'met' if growth < GROWTH_GOAL else 'MISSED'}\n")
    result = {"throughput": speed, "memory": [small, large], "growth": growth, "goal_growth": GROWTH_GOAL}
    save("pipe_mode", result)
    return result
