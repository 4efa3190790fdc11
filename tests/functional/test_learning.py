"""Training learns: on the easy generated data set, mIOU rises well above the mIOU of predicting the
majority class everywhere, within eight short epochs from scratch, with the demo's settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.example import LEARNING_HYPERPARAMETERS
from tests.helpers import confusion

pytestmark = pytest.mark.slow


def majority_class_miou(base: Path, num_classes: int) -> float:
    masks = [np.asarray(Image.open(p)) for p in sorted((base / "input/data/validation_annotation").glob("*.png"))]
    labels = np.concatenate([m.reshape(-1) for m in masks])
    majority = np.bincount(labels[labels != 255]).argmax()
    return confusion(num_classes, (labels, np.full_like(labels, majority))).miou


@pytest.mark.parametrize("engine", ["mxnet", "torch"])
def test_miou_rises_well_above_chance(train_job, engine: str) -> None:
    hp = {**LEARNING_HYPERPARAMETERS, "epochs": 8, "num_training_samples": 32, "validation_mini_batch_size": 4}
    run = train_job(hp, env={"SEMSEG_ENGINE": engine}, images=32, validation_images=4, size=48)
    assert run.code == 0, run.failure
    chance = majority_class_miou(run.base, 3)
    mious = run.metric("validation:mIOU")
    assert 0.2 < chance < 0.35
    assert max(mious) > chance + 0.25, (chance, mious)
    losses = run.metric("train:loss")
    assert losses[-1] < losses[0] / 2
