"""Whole-image validation (validation_mini_batch_size=1) on images of varying sizes: one network resized
in place (ours) vs building a network for each image and loading the weights, as the managed algorithm does.
Both produce the same scores (tests/functional/test_model.py checks that); both run imperatively."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.model_zoo import FCN

from benchmarks.common import alternate, median, rate, save, table
from semseg.contract.config import Config
from semseg.engines.mxnet.network import build_model, set_output_size

SIZES = [(96, 128), (128, 96), (120, 160), (144, 112), (104, 136), (160, 120)]


def measure(sizes: list[tuple[int, int]], rounds: int) -> dict[str, Any]:
    config = Config(num_classes=21, num_training_samples=1, crop_size=480, use_pretrained_model=False)
    net = build_model(dataclasses.replace(config), [mx.cpu()])
    rng = np.random.default_rng(0)
    images = [mx.nd.array(rng.normal(size=(1, 3, h, w))) for h, w in sizes]
    params = Path(tempfile.mkdtemp()) / "model_best.params"
    set_output_size(net, 64, 64)
    net(mx.nd.zeros((1, 3, 64, 64)))
    net.save_parameters(str(params))

    def ours() -> int:
        for x in images:
            set_output_size(net, x.shape[2], x.shape[3])
            net(x)[0].argmax(axis=1).wait_to_read()
        return len(images)

    def rebuild() -> int:
        for x in images:
            fresh = FCN(21, backbone="resnet50", pretrained_base=False, height=x.shape[2], width=x.shape[3])
            fresh.load_parameters(str(params))
            fresh(x)[0].argmax(axis=1).wait_to_read()
        return len(images)

    ours(), rebuild()
    rates = alternate({"ours": lambda: rate(ours), "rebuild": lambda: rate(rebuild)}, rounds)
    result = {k: median(v) for k, v in rates.items()}
    return {
        "sizes": sizes,
        "ours": result["ours"],
        "rebuild": result["rebuild"],
        "ratio": result["ours"] / result["rebuild"],
        "runs": rates,
    }


def main(quick: bool = False) -> dict[str, Any]:
    result = measure(SIZES[:3] if quick else SIZES, rounds=2 if quick else 3)
    print(
        table(
            "Whole-image validation (images/s), fcn resnet-50, sizes 96-160 px: ours vs rebuild per image",
            ["images", "ours", "rebuild per image", "ratio"],
            [[len(result["sizes"]), result["ours"], result["rebuild"], result["ratio"]]],
        )
    )
    print(f"goal: >= 3x -> {result['ratio']:.2f}x {'met' if result['ratio'] >= 3 else 'MISSED'}\n")
    save("validation", {"result": result, "goal": 3.0})
    return result
