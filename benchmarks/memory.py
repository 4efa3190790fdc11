"""Memory of one training step and one validation pass, to calibrate semseg.fit.memory's estimate: for every
algorithm and backbone, the peak resident memory of a fresh process (MXNet on the CPU, float32) that builds
the network and runs training steps (or validation passes) at two sizes, each point in its own process
(the peak cannot be reset). Two points give the fixed part (framework, weights, gradients, optimizer states)
and the part per image pixel; the table prints both, and the estimate's constants beside them.

    python -m benchmarks memory            # every network (--quick: FCN ResNet-50 only)
    python -m benchmarks.memory --worker ALGORITHM BACKBONE CROP BATCH MODE
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from typing import Any

from benchmarks.common import save

POINTS = ((128, 1), (192, 2))  # (crop, batch): two sizes, activations 1 : 4.5
NETWORKS = [(a, b) for a in ("fcn", "psp", "deeplab", "deeplabv3plus") for b in ("resnet-50", "resnet-101")]


def worker(algorithm: str, backbone: str, crop: int, batch: int, mode: str) -> dict[str, Any]:
    import mxnet as mx
    import numpy as np
    from mxnet import autograd, gluon

    from semseg.contract.config import Config
    from semseg.engines.mxnet.loss import SegmentationLoss
    from semseg.engines.mxnet.network import build_model
    from semseg.fit.class_weights import pixel_weights

    config = Config(
        algorithm=algorithm, backbone=backbone, num_classes=21, num_training_samples=8, crop_size=crop,
        use_pretrained_model=False,
    )  # fmt: skip
    training = mode == "train"
    net = build_model(config, [mx.cpu()], aux=training)
    x = mx.nd.array(np.random.default_rng(0).normal(size=(batch, 3, crop, crop)), dtype="float32")
    if not training:
        for _ in range(2):
            net(x)[0].wait_to_read()
        return {"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    y = mx.nd.array(np.random.default_rng(1).integers(0, 21, size=(batch, crop, crop)), dtype="float32")
    loss_fn = SegmentationLoss(aux_weight=0.4, ignore_label=255)
    trainer = gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1e-3, "momentum": 0.9})
    for _ in range(2):
        with autograd.record():
            objective, _ = loss_fn(*net(x), y, mx.nd.array([1.0 / y.size]), mx.nd.array(pixel_weights(21, None)))
        objective.backward()
        trainer.step(batch)
        mx.nd.waitall()
    return {"peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def measure(algorithm: str, backbone: str, mode: str) -> dict[str, float]:
    peaks = []
    for crop, batch in POINTS:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--worker", algorithm, backbone, str(crop), str(batch), mode],
            capture_output=True, text=True, check=True, timeout=1200,
        )  # fmt: skip
        peaks.append(json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"])
    (c1, b1), (c2, b2) = POINTS
    per_pixel = (peaks[1] - peaks[0]) / (c2 * c2 * b2 - c1 * c1 * b1)
    return {"fixed_bytes": peaks[0] - per_pixel * c1 * c1 * b1, "bytes_per_pixel": per_pixel}


def main(quick: bool = False) -> None:
    save("memory", run(quick))


def run(quick: bool = False) -> dict[str, Any]:
    from semseg.fit.memory import BYTES_PER_PIXEL, FIXED_BYTES

    networks = NETWORKS[:1] if quick else NETWORKS
    results: dict[str, Any] = {}
    print(f"{'network':22} {'train: fixed MB':>16} {'B/pixel':>9} {'ours':>6} {'validate: B/pixel':>18} {'ours':>6}")
    for algorithm, backbone in networks:
        train = measure(algorithm, backbone, "train")
        validate = measure(algorithm, backbone, "validate")
        ours, ours_validate = BYTES_PER_PIXEL[(algorithm, backbone)]
        results[f"{algorithm}/{backbone}"] = {
            "train": train, "validate": validate, "estimate": ours,
            "validation_estimate": ours_validate,
        }  # fmt: skip
        print(
            f"{algorithm + ' ' + backbone:22} {train['fixed_bytes'] / 2**20:16.0f} {train['bytes_per_pixel']:9.0f} "
            f"{ours:6.0f} {validate['bytes_per_pixel']:18.0f} {ours_validate:6.0f}"
        )
    print(f"estimate's fixed part: {FIXED_BYTES / 2**20:.0f} MB")
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        a, b, crop, batch, mode = sys.argv[2:7]
        print(json.dumps(worker(a, b, int(crop), int(batch), mode)))
    else:
        main("--quick" in sys.argv)
