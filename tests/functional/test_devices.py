"""The multi-device path (split over devices, per-device losses, SyncBatchNorm, summed validation counts),
proven on several CPU contexts: MXNet runs the same data-parallel code there as on several GPUs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from semseg.engines.mxnet.network import _blocks, build_model, materialize
from tests.tiny_mxnet import CONFIG, ONE, TWO, TinyNet, assert_same_weights, batch, loop_on, train_on, weights


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
