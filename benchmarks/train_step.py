"""Training throughput: our loop vs a plain GluonCV loop, same model, crop, batch and device.

Reference, the way GluonCV's scripts/segmentation/train.py trains: imperative network,
gluoncv.loss.MixSoftmaxCrossEntropyLoss, gluon.Trainer, float32 ImageNet-normalised batches made on the
host, and the loss read back every iteration. Ours: semseg.engine.Loop (hybridized with static
allocation, hybridized loss, uint8 batches normalised on the device, no per-iteration host sync).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.loss import MixSoftmaxCrossEntropyLoss
from mxnet import autograd, gluon

from benchmarks.common import alternate, median, rate, save, table
from semseg.config import Config
from semseg.engine import MEAN, STD, Loop
from semseg.loss import SegmentationLoss
from semseg.model import build_model


class _NoHooks:
    def epoch_start(self, epoch: int) -> None: ...
    def progress(self, *args: Any) -> None: ...
    def epoch_end(self, *args: Any) -> None: ...


def batches(count: int, batch: int, crop: int, classes: int) -> list[tuple[mx.nd.NDArray, mx.nd.NDArray]]:
    rng = np.random.default_rng(0)
    return [
        (
            mx.nd.array(rng.integers(0, 255, size=(batch, crop, crop, 3)), dtype="uint8"),
            mx.nd.array(rng.integers(0, classes, size=(batch, crop, crop)), dtype="uint8"),
        )
        for _ in range(count)
    ]


def reference_step(
    net: gluon.Block, loss_fn: gluon.Block, trainer: gluon.Trainer, data: list[tuple[mx.nd.NDArray, mx.nd.NDArray]]
) -> int:
    mean = mx.nd.array(MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(STD).reshape((1, 3, 1, 1))
    samples = 0
    for images, masks in data:
        x = (images.astype("float32").transpose((0, 3, 1, 2)) / 255 - mean) / std  # host-side, as GluonCV's
        y = masks.astype("float32")
        with autograd.record():
            losses = loss_fn(*net(x), y)
        losses.backward()
        trainer.step(images.shape[0])
        float(losses.mean().asnumpy())  # GluonCV's script reads the loss every iteration
        samples += images.shape[0]
    return samples


def measure(algorithm: str, crop: int, batch: int, iterations: int, rounds: int) -> dict[str, Any]:
    config = Config(
        num_classes=21,
        num_training_samples=batch * iterations,
        algorithm=algorithm,
        crop_size=crop,
        use_pretrained_model=False,
        mini_batch_size=batch,
    )
    ctx = [mx.cpu()]
    data = batches(iterations, batch, crop, config.num_classes)

    mx.random.seed(0)
    ours_net = build_model(config, ctx)
    ours_trainer = gluon.Trainer(ours_net.collect_params(), "sgd", {"learning_rate": 1e-4, "momentum": 0.9})
    loop = Loop(ours_net, SegmentationLoss(0.5, 255), ours_trainer, ctx, config.num_classes, crop)

    mx.random.seed(0)
    ref_net = build_model(dataclasses.replace(config), ctx)
    ref_trainer = gluon.Trainer(ref_net.collect_params(), "sgd", {"learning_rate": 1e-4, "momentum": 0.9})
    ref_loss = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5, ignore_label=255)

    def ours() -> int:
        result = loop.train_epoch(data, 0, _NoHooks(), progress_every=10**9)
        mx.nd.waitall()
        return len(data) * batch if result else 0

    def reference() -> int:
        done = reference_step(ref_net, ref_loss, ref_trainer, data)
        mx.nd.waitall()
        return done

    ours(), reference()  # warm-up: graph building, memory pools
    rates = alternate({"ours": lambda: rate(ours), "reference": lambda: rate(reference)}, rounds)
    result = {name: median(values) for name, values in rates.items()}
    return {
        "algorithm": algorithm,
        "crop": crop,
        "batch": batch,
        "ours": result["ours"],
        "reference": result["reference"],
        "ratio": result["ours"] / result["reference"],
        "runs": rates,
    }


def main(quick: bool = False) -> list[dict[str, Any]]:
    crops = [240]
    results = [
        measure(algorithm, crop, batch=4, iterations=2 if quick else 4, rounds=2 if quick else 3)
        for algorithm in ("fcn", "psp", "deeplab")
        for crop in crops
    ]
    print(
        table(
            "Training throughput (images/s), ours vs plain GluonCV loop, resnet-50, batch 4",
            ["algorithm", "crop", "ours", "reference", "ratio"],
            [[r["algorithm"], r["crop"], r["ours"], r["reference"], r["ratio"]] for r in results],
        )
    )
    fcn = next(r for r in results if r["algorithm"] == "fcn")
    print(f"goal: fcn at crop 240 >= 1.15x -> {fcn['ratio']:.2f}x {'met' if fcn['ratio'] >= 1.15 else 'MISSED'}\n")
    save("train_step", {"results": results, "goal": 1.15})
    return results


if __name__ == "__main__":
    main()
