"""End-to-end training jobs through the CLI on tiny generated data."""

from __future__ import annotations

import json

import pytest

from semseg.contract.config import Config


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_each_algorithm_trains_to_completion(train_job, algorithm: str) -> None:
    run = train_job({"algorithm": algorithm, "epochs": 2})
    assert run.code == 0, run.failure
    assert run.model_files == {
        "hyperparams.json",
        "model_algo-1",
        "model_best.params",
        "model-symbol.json",
        "model-0000.params",
    }
    assert len(run.metric("train:loss")) == 2
    assert len(run.metric("validation:mIOU")) == 2 and len(run.metric("validation:pixel_accuracy")) == 2
    assert all(0.0 <= v <= 1.0 for v in run.metric("validation:mIOU") + run.metric("validation:pixel_accuracy"))
    assert "#progress_metric: host=algo-1, completed 100 % of epochs" in run.messages
    assert any(m.startswith("#progress_notice. epoch: 1, iterations: 2 speed: ") for m in run.messages)
    assert "LRScheduler setup: iters per epoch: 2, num_epochs 2" in run.messages
    saved = json.loads((run.base / "model" / "hyperparams.json").read_text())
    assert Config.from_hyperparameters(saved).algorithm == algorithm


def test_host_name_comes_from_resourceconfig(train_job, tmp_path) -> None:
    from semseg.example import make_job

    base = make_job(tmp_path / "h", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
    (base / "input" / "config" / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1-x7k2q", "hosts": ["algo-1-x7k2q"]})
    )
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert any(m.startswith("#quality_metric. host: algo-1-x7k2q, epoch: 0, train loss: ") for m in run.messages)


@pytest.mark.parametrize(
    ("optimizer", "scheduler", "extra"),
    [
        ("sgd", "poly", {}),
        ("nag", "cosine", {}),
        ("adam", "step", {"lr_scheduler_step": "1", "lr_scheduler_factor": "0.1"}),
        ("adagrad", "poly", {}),
        ("rmsprop", "cosine", {"gamma1": "0.95", "gamma2": "0.8"}),
    ],
)
def test_optimizers_and_schedulers(train_job, optimizer: str, scheduler: str, extra: dict[str, str]) -> None:
    hp = {"optimizer": optimizer, "lr_scheduler": scheduler, "epochs": 2, "learning_rate": "0.001", **extra}
    run = train_job(hp)
    assert run.code == 0, run.failure
    losses = run.metric("train:loss")
    assert len(losses) == 2 and all(loss == loss and loss < 100 for loss in losses)
    rates = [float(m.rsplit(" ", 1)[1]) for m in run.messages if m.startswith("#progress_notice")]
    assert len(rates) == 4, "a progress notice per iteration (SEMSEG_PROGRESS_EVERY=1), 2 iterations x 2 epochs"
    if scheduler == "step":
        assert rates[:2] == [0.001, 0.001] and rates[2:] == [0.0001, 0.0001]
    else:
        assert rates == sorted(rates, reverse=True) and rates[0] < 0.001 and rates[-1] < rates[0]


def test_training_is_deterministic_on_cpu(train_job) -> None:
    first = train_job({"epochs": 2}, images=4, seed=3)
    second = train_job({"epochs": 2}, images=4, seed=3)
    assert first.code == second.code == 0
    assert first.metric("train:loss") == second.metric("train:loss")
    assert first.metric("validation:mIOU") == second.metric("validation:mIOU")


def test_gluoncv_augmentation_with_base_size(train_job) -> None:
    run = train_job({"base_size": 40, "epochs": 1})
    assert run.code == 0, run.failure
    assert len(run.metric("train:loss")) == 1


def test_num_training_samples_drives_the_schedule(train_job) -> None:
    run = train_job({"num_training_samples": 16, "epochs": 1})
    assert run.code == 0, run.failure
    assert "LRScheduler setup: iters per epoch: 4, num_epochs 1" in run.messages
    assert any("num_training_samples=16 but channel 'train' has 8 usable pairs" in m for m in run.messages)


def test_float16_on_the_cpu_is_a_client_error_before_any_data_work(train_job) -> None:
    run = train_job({"precision_dtype": "float16"}, images=4)
    assert run.code == 2
    assert run.failure.startswith("ClientError: precision_dtype=float16 (mixed precision) needs GPUs")
    assert not any("image/annotation pairs" in m for m in run.messages)
