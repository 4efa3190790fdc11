"""The cost of what a job leaves for people (semseg.outputs.recorder): TensorBoard's scalars at every progress point,
and after every epoch the validation pictures (MAX_PICTURES predictions), their images in the event files, the
per-class scalars and learning_curves.png; at a best epoch also evaluation.json, confusion_matrix.png and the
picture files. Reference, in the same run: the training step of the same network (MXNet, CPU, FCN ResNet-50 from
scratch, crop 240, batch 4, 21 classes as PASCAL VOC).

The per-epoch part is spread over an epoch's steps: reported as a share of the step for the epoch of PASCAL VOC's
train set (1464 images at batch 4: 366 steps) and as the shortest epoch for which the whole costs under 2%.

    python -m benchmarks outputs [--quick]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import gluon

from benchmarks.common import device, save, table
from semseg.contract.config import Config
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import build_model
from semseg.fit.loop import LoopSettings, NoHooks
from semseg.measures.results import EpochResult
from semseg.outputs.board import Board
from semseg.outputs.pictures import MAX_PICTURES
from semseg.outputs.recorder import Outputs, Samples

CLASSES, CROP, BATCH = 21, 240, 4
VOC_STEPS = 1464 // BATCH
PROGRESS_EVERY = 20  # the default of SEMSEG_PROGRESS_EVERY


def batches(count: int, seed: int = 0) -> list[tuple[mx.nd.NDArray, mx.nd.NDArray]]:
    rng = np.random.default_rng(seed)
    return [
        (
            mx.nd.array(rng.integers(0, 256, (BATCH, CROP, CROP, 3)), dtype="uint8"),
            mx.nd.array(rng.integers(0, CLASSES, (BATCH, CROP, CROP)), dtype="uint8"),
        )
        for _ in range(count)
    ]


def main(quick: bool = False) -> dict[str, Any]:
    steps, epochs = (3, 2) if quick else (8, 4)
    config = Config(
        num_classes=CLASSES, num_training_samples=VOC_STEPS * BATCH, crop_size=CROP, use_pretrained_model=False,
        mini_batch_size=BATCH,
    )  # fmt: skip
    net = build_model(config, [mx.cpu()])
    trainer = gluon.Trainer(net.collect_params(), "sgd", optim.optimizer_params(config), kvstore="device")
    loop = Loop(net, trainer, [mx.cpu()], LoopSettings.of(config))
    train = batches(steps)
    loop.train_epoch(train[:1], 0, NoHooks(), 10**9)  # warm-up: tracing
    start = time.perf_counter()
    loop.train_epoch(train, 0, NoHooks(), 10**9)
    step_s = (time.perf_counter() - start) / steps
    with tempfile.TemporaryDirectory() as work:
        board = Board.open(Path(work) / "tensorboard", VOC_STEPS, 0)
        samples = Samples(batches(2, seed=1))
        list(samples)  # the first validation pass keeps the pictures' images
        outputs = Outputs(Path(work) / "data", board, samples, loop.classes)
        start = time.perf_counter()
        for i in range(100):
            outputs.progress(0, i + 1, 1.5, 1e-3)
        progress_s = (time.perf_counter() - start) / 100
        matrix = loop.evaluate(batches(1, seed=2), False)
        plain: list[float] = []
        best: list[float] = []
        for epoch in range(epochs):
            epoch_result = EpochResult(epoch, 1.0, 5.0, matrix.pixel_accuracy, matrix.miou, 1e-3, matrix)
            start = time.perf_counter()
            outputs.epoch_end(epoch_result, is_best=epoch % 2 == 0)
            (best if epoch % 2 == 0 else plain).append(time.perf_counter() - start)
        outputs.close()
        loop.train_epoch(train[:1], 0, NoHooks(), 10**9)  # the next step after the pictures re-plans memory
        start = time.perf_counter()
        loop.train_epoch(train[:1], 0, NoHooks(), 10**9)
        after_s = time.perf_counter() - start
    epoch_s = statistics.median(plain + best)
    per_step = progress_s / PROGRESS_EVERY + epoch_s / VOC_STEPS
    result: dict[str, Any] = {
        "device": device(),
        "step_s": step_s,
        "progress_point_s": progress_s,
        "epoch_end_plain_s": statistics.median(plain),
        "epoch_end_best_s": statistics.median(best),
        "share_of_step_voc": per_step / step_s,
        "shortest_epoch_under_2pct_steps": int(np.ceil(epoch_s / (0.02 * step_s - progress_s / PROGRESS_EVERY))),
        "step_after_pictures_s": after_s,
        "pictures": MAX_PICTURES,
    }
    print(
        table(
            f"What a job leaves for people vs the training step ({device()})",
            ["measure", "value"],
            [
                ["training step, FCN ResNet-50, crop 240, batch 4 (s)", step_s],
                ["TensorBoard scalars at a progress point (ms)", 1000 * progress_s],
                ["epoch end: pictures, event files, curves (s)", result["epoch_end_plain_s"]],
                ["epoch end at a best epoch: also evaluation.json, PNGs (s)", result["epoch_end_best_s"]],
                [
                    f"share of the step, PASCAL VOC epoch ({VOC_STEPS} steps)",
                    f"{100 * result['share_of_step_voc']:.2f}%",
                ],
                ["shortest epoch (steps) under 2%", result["shortest_epoch_under_2pct_steps"]],
            ],
        )
    )
    save("outputs", result)
    return result
