"""The pictures of a job (semseg.outputs.pictures): panels blended in the palette, shrinking, the confusion matrix
up to 254 classes, the learning curves; and the TensorBoard writer's failures are warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.data.palette import PALETTE, overlay
from semseg.measures.confusion import ConfusionMatrix
from semseg.measures.results import EpochResult
from semseg.outputs.board import Board
from semseg.outputs.pictures import GAP, MAX_SIDE, confusion_png, curves_png, triptych


def test_triptych_is_image_truth_and_prediction_blended_in_the_palette() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    truth = rng.integers(0, 4, (20, 30)).astype(np.uint8)
    truth[0, :5] = 255  # ignored: VOC's boundary colour
    prediction = rng.integers(0, 4, (20, 30)).astype(np.uint8)
    picture = triptych(image, truth, prediction)
    assert picture.shape == (20, 3 * 30 + 2 * GAP, 3)
    assert np.array_equal(picture[:, :30], image)
    assert np.array_equal(picture[:, 30 + GAP : 60 + GAP], overlay(image, truth))
    assert np.array_equal(picture[:, 60 + 2 * GAP :], overlay(image, prediction))
    assert np.all(picture[:, 30 : 30 + GAP] == 255)
    assert tuple(PALETTE[255]) == (224, 224, 192)


def test_a_large_image_is_shrunk_and_its_classes_stay_classes() -> None:
    image = np.zeros((1000, 2000, 3), np.uint8)
    truth = np.zeros((1000, 2000), np.uint8)
    truth[:, 1000:] = 7
    picture = triptych(image, truth, truth)
    width = MAX_SIDE
    assert picture.shape == (MAX_SIDE // 2, 3 * width + 2 * GAP, 3)
    colours = {tuple(c) for c in picture[:, width + GAP : 2 * width + GAP].reshape(-1, 3)}
    assert colours == {
        tuple(overlay(image[:1, :1], truth[:1, :1])[0, 0]),
        tuple(overlay(image[:1, :1], truth[:1, -1:])[0, 0]),
    }


@pytest.mark.parametrize("classes", [3, 254])
def test_confusion_matrix_png(tmp_path: Path, classes: int) -> None:
    matrix = ConfusionMatrix(classes)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, classes, 20_000)
    matrix.add(labels, np.where(rng.random(20_000) < 0.7, labels, rng.integers(0, classes, 20_000)), 255)
    confusion_png(matrix, 3, tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as picture:
        assert picture.format == "PNG"
        assert 500 <= picture.size[0] <= 1800 and 500 <= picture.size[1] <= 1600
    assert not list(tmp_path.glob(".*.tmp")), "written atomically"


def test_learning_curves_png(tmp_path: Path) -> None:
    history = [EpochResult(e, 2.0 / (e + 1), 10.0, 0.5 + e / 20, 0.2 + e / 20, 1e-3) for e in range(5)]
    curves_png(history, 4, tmp_path / "l.png")
    with Image.open(tmp_path / "l.png") as picture:
        assert picture.size == (1100, 400)


def test_event_files_that_cannot_be_written_are_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    in_the_way = tmp_path / "tensorboard"
    in_the_way.write_text("a file")
    with caplog.at_level("WARNING"):
        assert Board.open(in_the_way, 10, 0) is None
    assert "No TensorBoard event files in" in caplog.text


def test_a_writer_that_fails_later_stops_writing_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        calls = 0

        def add_scalar(self, *args: object) -> None:
            Failing.calls += 1
            raise OSError("disk full")

    board = Board(Failing(), 10)
    with caplog.at_level("WARNING"):
        board.progress(0, 1, 1.0, 0.1)
        board.progress(0, 2, 1.0, 0.1)
    assert Failing.calls == 1 and caplog.text.count("TensorBoard event files stop here (disk full)") == 1


def test_a_resumed_jobs_outputs_go_on_from_the_checkpoints_record(tmp_path: Path) -> None:
    import json

    from semseg.outputs.recorder import Outputs, Samples

    def matrix(seed: int) -> ConfusionMatrix:
        rng = np.random.default_rng(seed)
        m = ConfusionMatrix(3)
        m.add(rng.integers(0, 3, 500), rng.integers(0, 3, 500), 255)
        return m

    first = Outputs(tmp_path / "first", None, Samples([]), lambda images: [])
    results = [EpochResult(e, 1.0 / (e + 1), 9.0, 0.5, m.miou, 1e-3, m) for e, m in enumerate([matrix(0), matrix(1)])]
    best = int(np.argmax([r.miou for r in results]))
    for result in results:
        first.epoch_end(result, is_best=result.epoch == best)
    record = json.loads(json.dumps(first.record()))  # as meta.json keeps it
    resumed = Outputs(tmp_path / "resumed", None, Samples([]), lambda images: [])
    resumed.resume(record, 3)
    assert [r.epoch for r in resumed.history] == [0, 1] and resumed.best_epoch == best
    assert [r.miou for r in resumed.history] == [r.miou for r in results]
    written = json.loads((tmp_path / "resumed" / "evaluation.json").read_text())
    assert written == json.loads((tmp_path / "first" / "evaluation.json").read_text())
    assert (tmp_path / "resumed" / "confusion_matrix.png").is_file()
    assert (tmp_path / "resumed" / "learning_curves.png").is_file()
    unreadable = Outputs(tmp_path / "bad", None, Samples([]), lambda images: [])
    unreadable.resume({"history": [{"epoch": "x", "nonsense": 1}]}, 3)
    assert unreadable.history == [] and not (tmp_path / "bad").exists()
