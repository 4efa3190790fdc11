"""GPU training throughput of our training step: fcn/psp/deeplab/deeplabv3plus resnet-50 at crop 240 and 480,
float32 and AMP (`precision_dtype=float16`), batch 16, on GPU 0. Skipped, saying so, on a machine without a GPU.

The managed algorithm's own log shows about 55 samples/s (crop 240, batch 16, one V100); the target on one
H100 is 4x that. Each configuration runs in a worker process of its own (benchmarks/train_step_worker.py).
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import device, median, save, table
from benchmarks.train_step import Worker

MANAGED_V100 = 55.0  # samples/s, crop 240, batch 16: the managed algorithm's published training log
TARGET = 4 * MANAGED_V100
BATCH = 16


def gpu_count() -> int:
    import mxnet as mx

    return int(mx.context.num_gpus())


def measure(algorithm: str, crop: int, precision: str, iterations: int, rounds: int) -> dict[str, Any]:
    worker = Worker("ours", algorithm, crop, BATCH, iterations, device="gpu", precision=precision)
    try:
        runs = [worker.timed_pass() for _ in range(rounds)]
    finally:
        worker.close()
    return {"algorithm": algorithm, "crop": crop, "precision": precision, "images_per_s": median(runs), "runs": runs}


def main(quick: bool = False) -> list[dict[str, Any]]:
    title = f"GPU training throughput (images/s), ours, resnet-50, batch {BATCH}, one GPU"
    if gpu_count() == 0:
        print(f"{title}\ndevice: {device()}\nskipped: this machine has no GPU that MXNet can use\n")
        save("gpu", {"skipped": "no GPU"})
        return []
    results = [
        measure(algorithm, crop, precision, iterations=5 if quick else 20, rounds=2 if quick else 3)
        for algorithm in ("fcn", "psp", "deeplab", "deeplabv3plus")
        for crop in (240, 480)
        for precision in ("float32", "float16")
    ]
    rows = [[r["algorithm"], r["crop"], r["precision"], r["images_per_s"]] for r in results]
    print(table(title, ["algorithm", "crop", "precision", "images/s"], rows))
    best = max(r["images_per_s"] for r in results if r["crop"] == 240)
    print(f"target: crop 240 >= {TARGET:.0f} images/s (4x the managed algorithm on a V100) -> best {best:.1f}\n")
    save("gpu", {"results": results, "target": TARGET})
    return results
