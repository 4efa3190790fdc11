"""A job's life on both engines, one parametrised module: the artifacts and the best weights, checkpoints and
resume, early stopping, incremental training, divergence. Signals, kills and failures: test_faults."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from gluoncv.model_zoo import FCN

from semseg.example import make_job
from tests.helpers import GRACE_SECONDS, board_scalars, model_tar, read_board, start_training, wait_for
from tests.tiny_mxnet import evaluate_plain

pytestmark = pytest.mark.slow

ENGINES = ["mxnet", "torch"]
CHECKPOINT_FILES = {"mxnet": ("model.params", "best.params"), "torch": ("model.pt", "best.pt")}


def checkpointed_job(tmp_path: Path, name: str, epochs: int = 4) -> Path:
    base = make_job(
        tmp_path / name,
        images=8,
        size=32,
        hyperparameters={"epochs": epochs, "mini_batch_size": 2, "validation_mini_batch_size": 2},
    )
    (base / "checkpoints").mkdir()
    return base


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path: Path, train_job, engine: str) -> None:
    whole = train_job(base=checkpointed_job(tmp_path, "whole"), env={"SEMSEG_ENGINE": engine})
    assert whole.code == 0, whole.failure

    base = checkpointed_job(tmp_path, "resumed")
    proc = start_training(base, engine)
    wait_for(proc, "epoch: 1, validation mIOU")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=GRACE_SECONDS)
    assert proc.returncode == 143
    resumed = train_job(base=base, env={"SEMSEG_ENGINE": engine})
    assert resumed.code == 0, resumed.failure
    assert any("Resuming from checkpoint" in m and "epoch-0001" in m for m in resumed.messages)
    assert len(resumed.metric("validation:mIOU")) == 2, "epochs 2 and 3 only"
    assert resumed.metric("validation:mIOU") == pytest.approx(whole.metric("validation:mIOU")[2:], abs=1e-6)
    assert resumed.metric("train:loss") == pytest.approx(whole.metric("train:loss")[2:], rel=1e-5)
    assert (base / "model" / "model_best.params").exists()
    # TensorBoard: the resumed job appends one timeline (4 updates per epoch); what the stopped job wrote after
    # its checkpoint (epoch 2's first progress points, maybe) is purged.
    assert len(list((base / "output/tensorboard").glob("events.out.tfevents.*"))) == 2
    board = read_board(base / "output/tensorboard")
    losses = board_scalars(board, "train/loss")
    assert [s for s, _ in losses] == [4, 8, 12, 16]
    assert [v for _, v in losses[2:]] == [float(np.float32(v)) for v in resumed.metric("train:loss")]
    assert [s for s, _ in board_scalars(board, "progress/loss")] == list(range(1, 17)), "each update once"
    meta = json.loads((base / "checkpoints" / "epoch-0003" / "meta.json").read_text())
    assert [h["epoch"] for h in meta["outputs"]["history"]] == [0, 1, 2, 3], "the curves go on"
    written = json.loads((base / "output/data/evaluation.json").read_text())
    assert written["epoch"] == int(np.argmax(whole.metric("validation:mIOU")))


@pytest.mark.parametrize("engine", ENGINES)
def test_corrupt_and_foreign_checkpoints_are_skipped(tmp_path: Path, train_job, engine: str) -> None:
    env = {"SEMSEG_ENGINE": engine}
    weights = CHECKPOINT_FILES[engine][0]
    base = checkpointed_job(tmp_path, "job", epochs=1)
    assert train_job(base=base, env=env).code == 0
    checkpoint = base / "checkpoints" / "epoch-0000"
    params = checkpoint / weights
    params.write_bytes(params.read_bytes()[: params.stat().st_size // 2])
    run = train_job(base=base, env=env)
    assert run.code == 0, run.failure
    assert any("Skipping checkpoint" in m and f"{weights} is" in m for m in run.messages)
    assert len(run.metric("validation:mIOU")) == 1, "trained from the start"

    config = base / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "learning_rate": "0.02"}))
    before = (base / "checkpoints" / "epoch-0000" / weights).read_bytes()
    run = train_job(base=base, env=env)
    assert run.code == 0, run.failure
    assert any("made with other hyperparameters (learning_rate)" in m for m in run.messages)
    kept = sorted((base / "checkpoints").glob("previous-*"))
    assert len(kept) == 2, "the corrupt checkpoint and the one of the old learning rate, both kept"
    assert (kept[-1] / "epoch-0000" / weights).read_bytes() == before, "the old learning rate's, intact"


@pytest.mark.parametrize("engine", ENGINES)
def test_incremental_training_from_a_model_tar(tmp_path: Path, train_job, engine: str) -> None:
    env = {"SEMSEG_ENGINE": engine}
    first = train_job({"epochs": 1}, env=env, images=4)
    assert first.code == 0, first.failure
    base = make_job(tmp_path / "second", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
    channel = base / "input" / "data" / "model"
    channel.mkdir()
    model_tar(first.base / "model", channel / "model.tar.gz")
    run = train_job(base=base, env=env)
    assert run.code == 0, run.failure
    assert any(m.startswith("Incremental training: starting from") and "model_best.params" in m for m in run.messages)
    assert not any("ImageNet" in m for m in run.messages)


@pytest.mark.parametrize("engine", ENGINES)
def test_incremental_training_mismatch_names_both_values(tmp_path: Path, train_job, engine: str) -> None:
    env = {"SEMSEG_ENGINE": engine}
    first = train_job({"epochs": 1}, env=env, images=4)
    assert first.code == 0, first.failure  # else the seed model below would be no model at all
    base = make_job(
        tmp_path / "second", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4, "algorithm": "psp"}
    )
    channel = base / "input" / "data" / "model"
    channel.mkdir()
    for path in (first.base / "model").iterdir():  # extracted files work as well as the archive
        (channel / path.name).write_bytes(path.read_bytes())
    run = train_job(base=base, env=env)
    assert run.code == 2
    assert "algorithm=psp here but algorithm=fcn in the seed model" in run.failure


@pytest.mark.parametrize("engine", ENGINES)
def test_divergence_is_an_algorithm_error_that_says_where(train_job, engine: str) -> None:
    run = train_job(
        {"optimizer": "rmsprop", "learning_rate": "1", "epochs": 2}, env={"SEMSEG_ENGINE": engine}, images=4
    )
    assert run.code == 1
    assert re.match(
        r"AlgorithmError: The train loss diverged \(NaN, infinite or above 1000 per pixel\) at epoch \d+, "
        r"iteration \d+\. "
        r"Lower learning_rate \(now 1\)",
        run.failure,
    ), run.failure[:300]
    assert (run.base / "model" / "hyperparams.json").exists()


# Each engine's own settings of the artifacts test as it stood before the two were merged: MXNet validates whole
# images and reproduces its mIOU exactly; MXNet's float arithmetic is not PyTorch's, so for the torch engine a
# handful of pixels on a class boundary may flip.
ARTIFACT_RUNS = {"mxnet": ({"validation_mini_batch_size": 1}, 1e-9), "torch": ({}, 1e-3)}


@pytest.mark.parametrize("engine", ENGINES)
def test_artifacts_load_in_plain_gluoncv_and_reproduce_the_logged_miou(train_job, engine: str) -> None:
    hyperparameters, tolerance = ARTIFACT_RUNS[engine]
    run = train_job({"epochs": 2, **hyperparameters}, env={"SEMSEG_ENGINE": engine}, images=4)
    assert run.code == 0, run.failure
    assert any("Exported" in m for m in run.messages)
    assert run.model_files == {"model_algo-1", "model_best.params", "hyperparams.json", "model-symbol.json",
                               "model-0000.params"}  # fmt: skip
    model_dir = run.base / "model"
    mious = run.metric("validation:mIOU")
    assert len(mious) == 2 and len(run.metric("train:loss")) == 2 and len(run.metric("train:throughput")) == 2
    # the README's snippet: plain GluonCV, no code of ours
    plain = FCN(nclass=3, backbone="resnet50", pretrained_base=False, crop_size=32)
    plain.load_parameters(str(model_dir / "model_algo-1"))
    assert evaluate_plain(lambda x: plain(x)[0], run.base, 3, 32) == pytest.approx(mious[-1], abs=tolerance)
    plain.load_parameters(str(model_dir / "model_best.params"))
    assert evaluate_plain(lambda x: plain(x)[0], run.base, 3, 32) == pytest.approx(max(mious), abs=tolerance)
    exported = mx.gluon.SymbolBlock.imports(
        str(model_dir / "model-symbol.json"), ["data"], str(model_dir / "model-0000.params")
    )
    assert evaluate_plain(exported, run.base, 3, 32) == pytest.approx(max(mious), abs=tolerance)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_best_weights_are_on_disk_as_soon_as_an_epoch_improves(tmp_path: Path, engine: str) -> None:
    """Killed (SIGKILL: nothing runs at the end) right after epoch 0's validation: model_best.params is there
    already, a GluonCV file of that epoch's weights."""
    base = make_job(tmp_path / "job", images=8, size=32, hyperparameters={"epochs": 5, "mini_batch_size": 2})
    proc = start_training(base, engine)
    wait_for(proc, "Epoch 0: best validation mIOU so far, kept for model_best.params")
    proc.kill()
    proc.communicate(timeout=GRACE_SECONDS)
    names = {p.name for p in (base / "model").iterdir()}
    assert {"model_best.params", "hyperparams.json"} <= names and "model_algo-1" not in names
    FCN(nclass=3, backbone="resnet50", pretrained_base=False, crop_size=32).load_parameters(
        str(base / "model" / "model_best.params")
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_early_stopping_stops(train_job, engine: str) -> None:
    hp = {
        "epochs": 6,
        "early_stopping": "True",
        "early_stopping_min_epochs": 2,
        "early_stopping_patience": 1,
        "early_stopping_tolerance": 1.0,  # never a 100 % relative improvement: stops at min_epochs
    }
    run = train_job(hp, env={"SEMSEG_ENGINE": engine}, images=4)
    assert run.code == 0, run.failure
    assert len(run.metric("validation:mIOU")) == 2
    assert any(m.startswith("Early stopping after epoch 1") for m in run.messages)
    assert "model_algo-1" in run.model_files


def test_a_checkpoint_of_the_other_engine_is_skipped(tmp_path: Path, train_job) -> None:
    base = checkpointed_job(tmp_path, "job", epochs=1)
    assert train_job(base=base).code == 0
    run = train_job(base=base, env={"SEMSEG_ENGINE": "torch"})
    assert run.code == 0, run.failure
    assert any("Skipping checkpoint" in m and "made by the mxnet engine" in m for m in run.messages)
    names = sorted(p.name for p in (base / "checkpoints").iterdir())
    assert names[:2] == ["best.pt", "epoch-0000"] and names[2].startswith("previous-") and len(names) == 3
    kept = base / "checkpoints" / names[2]
    assert sorted(p.name for p in kept.iterdir()) == ["best.params", "epoch-0000"], "the MXNet checkpoint, kept whole"
    assert (kept / "epoch-0000" / "model.params").is_file()


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rerun_that_trains_longer_resumes_and_keeps_what_it_did_not_write(
    tmp_path: Path, train_job, engine: str
) -> None:
    """Users reuse a checkpoint folder across jobs: a rerun with more epochs continues from the checkpoint, its
    schedule over the new total (the learning rates of an uninterrupted run of the new length); a rerun with
    another setting leaves the old checkpoint intact beside its own."""
    env = {"SEMSEG_ENGINE": engine}
    whole = train_job(base=checkpointed_job(tmp_path, "whole", epochs=3), env=env)
    assert whole.code == 0, whole.failure
    base = checkpointed_job(tmp_path, "job", epochs=2)
    assert train_job(base=base, env=env).code == 0
    config = base / "input" / "config" / "hyperparameters.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "epochs": "3"}))
    longer = train_job(base=base, env=env)
    assert longer.code == 0, longer.failure
    assert any("Resuming from checkpoint" in m and "epoch-0001" in m for m in longer.messages)
    assert any("Training continues with epochs=3" in m for m in longer.messages)
    assert len(longer.metric("validation:mIOU")) == 1, "epoch 2 only"

    def epoch_2_rates(run) -> list[str]:
        return [m.rsplit(" ", 1)[1] for m in run.messages if m.startswith("#progress_notice. epoch: 2,")]

    assert epoch_2_rates(longer) == epoch_2_rates(whole) and len(epoch_2_rates(whole)) == 4
    assert not list((base / "checkpoints").glob("previous-*")), "its own checkpoint, continued: nothing moved"

    before = {p.name: p.read_bytes() for p in (base / "checkpoints" / "epoch-0002").iterdir()}
    config.write_text(json.dumps({**json.loads(config.read_text()), "learning_rate": "0.002"}))
    other = train_job(base=base, env=env)
    assert other.code == 0, other.failure
    assert len(other.metric("validation:mIOU")) == 3, "trained from the start"
    (kept,) = (base / "checkpoints").glob("previous-*")
    assert {p.name: p.read_bytes() for p in (kept / "epoch-0002").iterdir()} == before
    assert (kept / CHECKPOINT_FILES[engine][1]).is_file(), "the old best weights kept with it"
