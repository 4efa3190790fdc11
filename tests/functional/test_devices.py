"""The multi-device path (split over devices, per-device losses, SyncBatchNorm, summed validation counts),
proven on several CPU contexts: MXNet runs the same data-parallel code there as on several GPUs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from semseg.contract.config import Config
from semseg.engines.mxnet import optim
from semseg.engines.mxnet.loop import Loop
from semseg.engines.mxnet.network import _blocks, build_model, materialize
from semseg.fit.loop import LoopSettings

CONFIG = Config(
    num_classes=3, num_training_samples=4, crop_size=32, use_pretrained_model=False, mini_batch_size=4, epochs=2
)
ONE = [mx.cpu(0)]
TWO = [mx.cpu(0), mx.cpu(1)]


class NoHooks:
    def epoch_start(self, epoch: int) -> None: ...

    def progress(self, *args: Any) -> None: ...

    def epoch_end(self, *args: Any) -> None: ...


def batch(size: int, crop: int = 32, seed: int = 0) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (size, crop, crop, 3))
    masks = rng.integers(0, 3, (size, crop, crop))
    masks[0, :4] = 255  # some ignored pixels, unevenly spread over the devices
    return mx.nd.array(images, dtype="uint8"), mx.nd.array(masks, dtype="uint8")


def loop_on(net: gluon.HybridBlock, contexts: list[mx.Context], config: Config) -> Loop:
    trainer = gluon.Trainer(net.collect_params(), "sgd", optim.optimizer_params(config), kvstore="device")
    return Loop(net, trainer, contexts, LoopSettings.of(config))


def train_on(loop: Loop, batches: list[tuple[mx.nd.NDArray, mx.nd.NDArray]]) -> float:
    """One pass of the loop over `batches`; the mean loss per sample."""
    result = loop.train_epoch(batches, 0, NoHooks(), progress_every=10**9)
    assert result is not None
    return result[0]


def weights(net: gluon.Block) -> dict[str, np.ndarray]:
    return {name: p.data(mx.cpu(0)).asnumpy() for name, p in net._collect_params_with_prefix().items()}


def assert_same_weights(a: dict[str, np.ndarray], b: dict[str, np.ndarray], rtol: float, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol, err_msg=name)


def test_a_job_on_two_cpu_contexts_trains_to_completion(train_job) -> None:
    run = train_job({"epochs": 2, "syncbn": "True"}, env={"SEMSEG_CPU_DEVICES": "2"}, images=4)
    assert run.code == 0, run.failure
    assert "Training data-parallel on 2 CPU contexts (SEMSEG_CPU_DEVICES)" in run.messages
    assert {"model_algo-1", "model_best.params", "hyperparams.json"} <= run.model_files
    assert len(run.metric("validation:mIOU")) == 2


def test_syncbn_on_cpu_contexts_keeps_per_device_batch_norm(caplog: pytest.LogCaptureFixture) -> None:
    """MXNet 1.9.1's SyncBatchNorm deadlocks on CPU contexts; GPUs get it (see model._norm)."""
    net = build_model(dataclasses.replace(CONFIG, syncbn=True), TWO)
    norms = {type(block).__name__ for block in _blocks(net)}
    assert "SyncBatchNorm" not in norms and "BatchNorm" in norms
    assert "SyncBatchNorm runs on GPUs only; 2 CPU contexts use BatchNorm" in caplog.text


class TinyNet(gluon.HybridBlock):
    """A network without batch statistics, so any split of a batch must give the same step."""

    def __init__(self) -> None:
        super().__init__()
        self.head = gluon.nn.Conv2D(3, 3, padding=1, in_channels=3)
        self.aux = gluon.nn.Conv2D(3, 1, in_channels=3)

    def hybrid_forward(self, F: Any, x: Any) -> tuple[Any, Any]:
        return self.head(x), self.aux(x)


@pytest.mark.parametrize("size", [3, 5])
def test_an_odd_batch_is_split_over_two_contexts_and_weighted_like_one(size: int) -> None:
    results = []
    for contexts in (ONE, TWO):
        mx.random.seed(1)
        net = TinyNet()
        net.initialize(mx.init.Xavier(), ctx=contexts)
        loop = loop_on(net, contexts, CONFIG)
        loss = train_on(loop, [batch(size, seed=size)])
        results.append((loss, weights(net)))
    (loss_one, w_one), (loss_two, w_two) = results
    assert loss_two == pytest.approx(loss_one, rel=1e-6)
    assert_same_weights(w_one, w_two, rtol=1e-5, atol=1e-7)


def test_validation_counts_summed_over_two_contexts_equal_one(tmp_path: Path) -> None:
    trained = build_model(CONFIG, ONE)
    train_on(loop_on(trained, ONE, CONFIG), [batch(4)])
    trained.save_parameters(str(tmp_path / "w.params"))
    two = build_model(CONFIG, TWO)
    materialize(two, TWO, CONFIG.crop_size)
    two.load_parameters(str(tmp_path / "w.params"), ctx=TWO)
    validation = [batch(3, seed=7), batch(2, seed=8)]
    for whole_images in (False, True):
        one_matrix = loop_on(trained, ONE, CONFIG).evaluate(validation, whole_images)
        two_matrix = loop_on(two, TWO, CONFIG).evaluate(validation, whole_images)
        assert one_matrix.matrix.sum() == 5 * 32 * 32 - 2 * 4 * 32  # ignored pixels are not counted
        assert np.array_equal(one_matrix.matrix, two_matrix.matrix)
