"""One variant of the training-step benchmark in its own process (see benchmarks/train_step.py).

    python -m benchmarks.train_step_worker VARIANT ALGORITHM CROP BATCH ITERATIONS [DEVICE [PRECISION]]

DEVICE: cpu (default) or gpu (GPU 0); PRECISION: float32 (default) or float16 (MXNet AMP, GPUs only, as
`precision_dtype=float16` trains). Builds the network, warms up with one pass, prints {"threads": ...}; then
for every line on stdin runs one timed pass of ITERATIONS training steps and prints {"rate": images per second}.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import mxnet as mx
import numpy as np
from gluoncv.loss import MixSoftmaxCrossEntropyLoss
from mxnet import autograd, gluon
from mxnet.contrib import amp

from semseg.contract.config import Config
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import build_model
from semseg.engines.normalization import MEAN, STD
from semseg.fit.loop import LoopSettings, NoHooks

Batches = list[tuple[mx.nd.NDArray, mx.nd.NDArray]]


def batches(count: int, batch: int, crop: int, classes: int) -> Batches:
    rng = np.random.default_rng(0)
    return [
        (
            mx.nd.array(rng.integers(0, 255, size=(batch, crop, crop, 3)), dtype="uint8"),
            mx.nd.array(rng.integers(0, classes, size=(batch, crop, crop)), dtype="uint8"),
        )
        for _ in range(count)
    ]


def reference_pass(
    net: gluon.Block, loss_fn: gluon.Block, trainer: gluon.Trainer, data: Batches, ctx: mx.Context
) -> None:
    """GluonCV's script: host-side normalisation, imperative forward, loss read every iteration."""
    mean = mx.nd.array(MEAN).reshape((1, 3, 1, 1))
    std = mx.nd.array(STD).reshape((1, 3, 1, 1))
    for images, masks in data:
        x = ((images.astype("float32").transpose((0, 3, 1, 2)) / 255 - mean) / std).as_in_context(ctx)
        with autograd.record():
            losses = loss_fn(*net(x), masks.astype("float32").as_in_context(ctx))
        losses.backward()
        trainer.step(images.shape[0])
        float(losses.mean().asnumpy())


def make_pass(variant: str, config: Config, data: Batches, ctx: list[mx.Context]) -> Callable[[], None]:
    mixed_precision = config.precision_dtype == "float16"
    if mixed_precision:
        amp.init()  # before the network is built, as semseg.engines.mxnet.kit does
    mx.random.seed(0)
    net = build_model(config, ctx)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-4, "momentum": 0.9})
    if mixed_precision:
        amp.init_trainer(trainer)
    if variant == "ours":
        loop = Loop(net, trainer, ctx, LoopSettings.of(config))
        return lambda: loop.train_epoch(data, 0, NoHooks(), progress_every=10**9) and None
    loss_fn = MixSoftmaxCrossEntropyLoss(aux=True, aux_weight=0.5, ignore_label=255)
    return lambda: reference_pass(net, loss_fn, trainer, data, ctx[0])


def main(variant: str, algorithm: str, crop: int, batch: int, iterations: int, device: str, precision: str) -> None:
    config = Config(
        num_classes=21,
        num_training_samples=batch * iterations,
        algorithm=algorithm,
        crop_size=crop,
        use_pretrained_model=False,
        mini_batch_size=batch,
        precision_dtype=precision,
    )
    ctx = [mx.gpu(0)] if device == "gpu" else [mx.cpu()]
    data = batches(iterations, batch, crop, config.num_classes)
    run = make_pass(variant, config, data, ctx)
    run()  # warm-up: graph building, memory pools
    mx.nd.waitall()
    print(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS", "MXNet default")}), flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        run()
        mx.nd.waitall()
        print(json.dumps({"rate": len(data) * batch / (time.perf_counter() - start)}), flush=True)


if __name__ == "__main__":
    name, algo, crop_size, batch_size, count, *rest = sys.argv[1:]
    device_name = rest[0] if rest else "cpu"
    dtype = rest[1] if len(rest) > 1 else "float32"
    main(name, algo, int(crop_size), int(batch_size), int(count), device_name, dtype)
