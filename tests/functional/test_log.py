"""What users see beyond the managed lines: the log's engine line at start, per-class IoU table after each
validation (its mean is the logged mIOU) and time left on the progress lines' cadence, on both engines; and the
best epoch's evaluation.json in /opt/ml/output/data."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ("mxnet", r"Engine: MXNet 1\.9\.1 with GluonCV 0\.1\d\.\d+, on cpu\(0\)"),
        ("torch", r"Engine: PyTorch 2\.\d+\.\d+\S*, on 1 CPU process\(es\)"),
    ],
)
def test_engine_line_class_table_and_time_left(train_job, engine: str, line: str) -> None:
    run = train_job({"epochs": 2}, env={"SEMSEG_ENGINE": engine})
    assert run.code == 0, run.failure
    assert any(re.fullmatch(line, message) for message in run.messages), [m for m in run.messages if "Engine" in m]
    mious = run.metric("validation:mIOU")
    assert len(mious) == 2  # one validation an epoch, each followed by its table
    for epoch, miou in enumerate(mious):
        start = run.messages.index(f"Validation IoU per class, epoch {epoch} (mIOU {miou:.6f} is their mean):")
        assert run.messages[start + 1] == "  class  IoU     pixels"
        rows = [re.fullmatch(r"  +(\d+)  (\d\.\d{4})  +(\d+\.\d\d)%", m) for m in run.messages[start + 2 : start + 5]]
        assert all(rows), run.messages[start : start + 5]
        assert [int(r[1]) for r in rows if r] == [0, 1, 2]
        assert sum(float(r[2]) for r in rows if r) / 3 == pytest.approx(miou, abs=1e-4)
        assert sum(float(r[3]) for r in rows if r) == pytest.approx(100, abs=0.02)
    left = [m for m in run.messages if m.startswith("Time left: ")]
    assert len(left) == 4  # 2 iterations per epoch, a progress line each (SEMSEG_PROGRESS_EVERY=1)
    assert re.fullmatch(r"Time left: epoch 1 about 0:00:00, job about 0:00:00", left[-1])
    assert re.fullmatch(r"Time left: epoch 0 about \d:\d\d:\d\d, job about \d:\d\d:\d\d", left[0])


def test_evaluation_json_is_the_best_epochs_validation(train_job) -> None:
    """Checked against a confusion matrix computed independently: the best weights predicting each whole
    validation image through the server's predictor."""
    import mxnet as mx
    from PIL import Image

    from semseg.contract.model_folder import read_model_folder
    from semseg.engines.mxnet.network import load_model
    from semseg.engines.mxnet.predict import Predictor
    from tests.helpers import confusion

    run = train_job({"epochs": 3, "validation_mini_batch_size": 1})
    assert run.code == 0, run.failure
    written = json.loads((run.base / "output/data/evaluation.json").read_text())
    mious = run.metric("validation:mIOU")
    assert mious[written["epoch"]] == max(mious) and written["mIOU"] == mious[written["epoch"]]
    assert np.mean(written["per_class_iou"]) == pytest.approx(written["mIOU"], rel=1e-12)
    matrix = np.array(written["confusion_matrix"])
    folder = read_model_folder(run.base / "model", "the test's model")
    predictor = Predictor(load_model(folder, [mx.cpu()]), mx.cpu(), folder.config.crop_size, 10**6)
    pairs = []
    for path in sorted((run.base / "input/data/validation").glob("*.jpg")):
        mask = np.asarray(Image.open(run.base / "input/data/validation_annotation" / f"{path.stem}.png"))
        pairs.append((mask, predictor.classes(np.asarray(Image.open(path).convert("RGB")))))
    independent = confusion(3, *pairs).matrix
    assert matrix.shape == (3, 3) and matrix.sum() == independent.sum()  # every labelled pixel, once
    assert np.abs(matrix - independent).sum() <= 0.01 * matrix.sum()  # imperative vs traced graph: a few pixels
    assert written["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum(), rel=1e-12)
