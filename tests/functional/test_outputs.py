"""What a job leaves for people, on both engines: TensorBoard's event files (read back with TensorBoard's own
reader; every scalar equals its metric line), the pictures in /opt/ml/output/data (each opens, at its size), a
resumed job's timeline going on (test_job_life), and that none of it can fail the job."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from semseg.data.palette import overlay
from semseg.outputs.pictures import GAP
from tests.helpers import board_scalars, read_board

ENGINES = ["mxnet", "torch"]


def notices(messages: list[str]) -> list[tuple[int, int, float]]:
    """(epoch, iteration, learning rate) of every progress notice."""
    found = [
        re.match(r"#progress_notice\. epoch: (\d+), iterations: (\d+) .* learning_rate: (\S+)", m) for m in messages
    ]
    return [(int(m[1]), int(m[2]), float(m[3])) for m in found if m]


@pytest.mark.parametrize("engine", ENGINES)
def test_event_files_hold_the_metric_lines(train_job, engine: str) -> None:
    epochs, per_epoch = 3, 2  # 8 training images, mini_batch_size 4
    run = train_job({"epochs": epochs}, env={"SEMSEG_ENGINE": engine}, validation_images=5)
    assert run.code == 0, run.failure
    board = read_board(run.base / "output/tensorboard")
    ends = [(epoch + 1) * per_epoch for epoch in range(epochs)]
    for tag, name in [
        ("train/loss", "train:loss"),
        ("validation/mIOU", "validation:mIOU"),
        ("validation/pixel_accuracy", "validation:pixel_accuracy"),
    ]:
        logged = run.metric(name)
        assert board_scalars(board, tag) == [(s, float(np.float32(v))) for s, v in zip(ends, logged)], tag
    throughput = board_scalars(board, "train/throughput")
    assert [s for s, _ in throughput] == ends
    assert [v for _, v in throughput] == pytest.approx(run.metric("train:throughput"), abs=0.006)  # logged .2f
    points = notices(run.messages)
    assert len(points) == epochs * per_epoch
    rates = board_scalars(board, "progress/learning_rate")
    assert [s for s, _ in rates] == [e * per_epoch + i for e, i, _ in points]
    assert [v for _, v in rates] == pytest.approx([lr for _, _, lr in points], abs=6e-7)  # logged .6f
    assert [s for s, _ in board_scalars(board, "progress/loss")] == [s for s, _ in rates]
    assert all(np.isfinite(v) and v > 0 for _, v in board_scalars(board, "progress/loss"))
    epoch_rates = [v for _, v in board_scalars(board, "train/learning_rate")]
    assert epoch_rates == pytest.approx([lr for _, i, lr in points if i == per_epoch], abs=6e-7)
    mious = run.metric("validation:mIOU")
    for epoch in range(epochs):
        start = run.messages.index(f"Validation IoU per class, epoch {epoch} (mIOU {mious[epoch]:.6f} is their mean):")
        table = [float(m.split()[1]) for m in run.messages[start + 2 : start + 5]]
        per_class = [board_scalars(board, f"class_iou/{c:03d}")[epoch] for c in range(3)]
        assert [s for s, _ in per_class] == [ends[epoch]] * 3
        assert [v for _, v in per_class] == pytest.approx(table, abs=5e-5)
        assert np.mean([v for _, v in per_class]) == pytest.approx(mious[epoch], abs=1e-6)
    images = sorted(t for t in board.Tags()["images"])
    assert images == [f"validation/{n}" for n in range(4)]
    for tag in images:
        events = board.Images(tag)
        assert [e.step for e in events] == ends
        picture = Image.open(io.BytesIO(events[-1].encoded_image_string))
        assert picture.size == (3 * 32 + 2 * GAP, 32), "image | truth | prediction of a 32 px centre crop"


@pytest.mark.parametrize("engine", ENGINES)
def test_pictures_of_the_best_epoch_open(train_job, engine: str) -> None:
    """Three validation images: three pictures (the first pass's, once each)."""
    run = train_job({"epochs": 2, "validation_mini_batch_size": 1}, env={"SEMSEG_ENGINE": engine}, validation_images=3)
    assert run.code == 0, run.failure
    data = run.base / "output/data"
    names = sorted(p.name for p in data.iterdir())
    assert names == [
        "confusion_matrix.png", "evaluation.json", "learning_curves.png",
        *[f"validation-{n}.png" for n in range(3)],
    ]  # fmt: skip
    for n in range(3):
        with Image.open(data / f"validation-{n}.png") as picture:
            assert picture.size == (3 * 32 + 2 * GAP, 32) and picture.mode == "RGB", "whole 32 px images"
            picture.load()
    masks = sorted((run.base / "input/data/validation_annotation").glob("*.png"))
    for n, path in enumerate(masks):  # the validation images in order, their truth blended in the palette
        picture = np.asarray(Image.open(data / f"validation-{n}.png"))
        truth = np.asarray(Image.open(path))
        assert np.array_equal(picture[:, 32 + GAP : 64 + GAP], overlay(picture[:, :32], truth))
    for name in ("confusion_matrix.png", "learning_curves.png"):
        with Image.open(data / name) as picture:
            assert picture.format == "PNG" and min(picture.size) >= 300
            assert len(np.unique(np.asarray(picture.convert("L")))) > 10, "something is drawn"


def test_a_job_whose_pictures_cannot_be_written_still_trains(train_job, tmp_path) -> None:
    """output/data and output/tensorboard are files, not folders: warnings, and the job's model as ever."""
    from semseg.example import make_job

    base = make_job(tmp_path / "job", images=8, size=32, hyperparameters={"epochs": 2, "mini_batch_size": 4})
    (base / "output").mkdir(exist_ok=True)
    (base / "output/tensorboard").write_text("in the way")
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert (base / "model/model_best.params").is_file()
    assert any(m.startswith("No TensorBoard event files in") for m in run.messages)
    assert (base / "output/data/learning_curves.png").is_file()


def test_a_fresh_job_moves_an_earlier_jobs_event_files_aside(train_job, tmp_path) -> None:
    from semseg.example import make_job

    base = make_job(tmp_path / "job", images=8, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 4})
    assert train_job(base=base).code == 0
    first = sorted((base / "output/tensorboard").glob("events.out.tfevents.*"))
    assert len(first) == 1
    assert train_job(base=base).code == 0
    folder = base / "output/tensorboard"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    (aside,) = folder.glob("previous-*")
    assert [p.name for p in aside.iterdir()] == [first[0].name]
    assert [s for s, _ in board_scalars(read_board(folder), "train/loss")] == [2], "one timeline, this job's"


def test_two_torch_processes_write_one_set_of_outputs(train_job) -> None:
    """SEMSEG_CPU_DEVICES=2: two DDP processes; the first alone writes, with the global mIOU and its own pictures."""
    run = train_job({"epochs": 2}, env={"SEMSEG_ENGINE": "torch", "SEMSEG_CPU_DEVICES": "2"}, validation_images=4)
    assert run.code == 0, run.failure
    folder = run.base / "output/tensorboard"
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    board = read_board(folder)
    mious = board_scalars(board, "validation/mIOU")
    assert [s for s, _ in mious] == [2, 4]
    written = json.loads((run.base / "output/data/evaluation.json").read_text())  # the workers' log is not captured
    assert max(v for _, v in mious) == float(np.float32(written["mIOU"]))
    assert np.array(written["confusion_matrix"]).sum() > 2 * 32 * 32, "global: more than one share of 2 images"
    assert sorted(board.Tags()["images"]) == ["validation/0", "validation/1"], "the first process's share: 2 of 4"
