"""Whole-image validation above SEMSEG_PIXEL_BUDGET goes by sliding crop_size windows on both engines, and
scores exactly what the server predicts for the same weights and images."""

from __future__ import annotations

import mxnet as mx
import pytest

from semseg.contract.model_folder import read_model_folder
from semseg.data.dataset import read_image, read_mask
from semseg.engines.mxnet.network import load_model
from semseg.engines.mxnet.predict import Predictor
from semseg.example import LEARNING_HYPERPARAMETERS
from tests.helpers import confusion


@pytest.mark.parametrize("engine, tolerance", [("mxnet", 1e-9), ("torch", 1e-3)])
def test_large_validation_images_are_scored_by_windows_as_the_server_predicts(
    train_job, engine: str, tolerance: float
) -> None:
    # 48x48 images, crop 32: with a budget of one pixel (never below one 32x32 window) every image is windowed
    hp = {**LEARNING_HYPERPARAMETERS, "epochs": 2, "num_training_samples": 8, "validation_mini_batch_size": 1,
          "crop_size": 32}  # fmt: skip
    run = train_job(hp, env={"SEMSEG_PIXEL_BUDGET": "1", "SEMSEG_ENGINE": engine}, images=8, size=48)
    assert run.code == 0, run.failure
    best = max(run.metric("validation:mIOU"))  # the server loads model_best.params
    net = load_model(read_model_folder(run.base / "model", "the job's model"), [mx.cpu()])
    data = run.base / "input" / "data"
    images = sorted((data / "validation").glob("*.jpg"))
    assert images and all(read_image(path).shape[:2] == (48, 48) for path in images)

    def miou(pixel_budget: int) -> float:
        predictor = Predictor(net, mx.cpu(), 32, pixel_budget)
        masks = [read_mask(data / "validation_annotation" / f"{path.stem}.png") for path in images]
        return confusion(3, *zip(masks, [predictor.classes(read_image(path)) for path in images])).miou

    assert miou(1) == pytest.approx(best, abs=tolerance)
    assert abs(miou(10**6) - best) > 2 * tolerance, "one pass scores differently: the windows were used"
