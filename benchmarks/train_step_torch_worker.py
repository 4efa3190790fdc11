"""The PyTorch engine's variant of the training-step benchmark, in its own process (no MXNet loaded).

    python -m benchmarks.train_step_torch_worker ALGORITHM CROP BATCH ITERATIONS

Same protocol as benchmarks/train_step_worker.py: builds and warms up, prints {"threads": ...}, then one timed pass
of ITERATIONS steps (semseg.engines.torch.loop.Loop.train_epoch over uint8 batches on the CPU) per line on stdin."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

from semseg.contract.config import Config
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.optim import trainer_for
from semseg.fit.loop import LoopSettings, NoHooks


def main(algorithm: str, crop: int, batch: int, iterations: int) -> None:
    config = Config(
        num_classes=21,
        num_training_samples=batch * iterations,
        algorithm=algorithm,
        crop_size=crop,
        use_pretrained_model=False,
        mini_batch_size=batch,
        optimizer="sgd",
        learning_rate=1e-4,
    )
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = [
        (
            torch.from_numpy(rng.integers(0, 255, size=(batch, crop, crop, 3), dtype=np.uint8)),
            torch.from_numpy(rng.integers(0, config.num_classes, size=(batch, crop, crop), dtype=np.uint8)),
        )
        for _ in range(iterations)
    ]
    net = SegmentationNet(algorithm, config.backbone, config.num_classes)
    device = torch.device("cpu")
    loop = Loop(net, trainer_for(net, config), device, LoopSettings.of(config))
    loop.train_epoch(data, 0, NoHooks(), 10**9)  # warm-up
    print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS", f"torch default ({torch.get_num_threads()})")}))
    sys.stdout.flush()
    for _ in sys.stdin:
        start = time.perf_counter()
        loop.train_epoch(data, 0, NoHooks(), 10**9)
        print(json.dumps({"rate": len(data) * batch / (time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    algo, crop_size, batch_size, count = sys.argv[1:5]
    main(algo, int(crop_size), int(batch_size), int(count))
