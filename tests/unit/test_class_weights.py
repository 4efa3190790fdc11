"""class_weights: every form it is given in, every bad form (all problems in one message), median-frequency
balancing against a hand computation, the pixel count of `auto` against a hand count of generated masks, and
the companion file a rerun can repeat."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semseg.contract.config import Config
from semseg.contract.errors import ClientError
from semseg.contract.job import JobPaths, load_job
from semseg.data.class_counts import count_train_pixels
from semseg.data.pipeline import list_channels
from semseg.distributed.part import Part
from semseg.example import IMBALANCED_CLASSES, make_job
from semseg.fit.class_weights import CLIP, class_weights, median_frequency, pixel_weights

REQUIRED = {"num_classes": "4", "num_training_samples": "10"}


def parse(value: object) -> object:
    return Config.from_hyperparameters({**REQUIRED, "class_weights": value}).class_weights


def rejected(value: object, **extra: str) -> str:
    with pytest.raises(ClientError) as info:
        Config.from_hyperparameters({**REQUIRED, **extra, "class_weights": value})
    return info.value.message


def test_unset_is_the_unweighted_loss_and_is_not_written_back() -> None:
    config = Config.from_hyperparameters(REQUIRED)
    assert config.class_weights is None and not config.auto_class_weights
    assert "class_weights" not in config.to_hyperparameters()


@pytest.mark.parametrize("value", ["auto", "AUTO", '"auto"', " auto "])
def test_auto_in_every_string_form(value: str) -> None:
    assert parse(value) == "auto"


@pytest.mark.parametrize("value", ["1, 1, 5, 5", "1,1,5,5", "[1, 1, 5, 5]", "[1.0,1.0,5.0,5.0]", '"1, 1, 5, 5"'])
def test_a_list_in_every_string_form(value: str) -> None:
    assert parse(value) == (1.0, 1.0, 5.0, 5.0)


def test_a_json_list_value_and_zero_weights() -> None:
    assert parse([1, 0, 2.5, 1]) == (1.0, 0.0, 2.5, 1.0)


@pytest.mark.parametrize("value", ["auto", "0.5,1,2,4"])
def test_the_configuration_reads_back_unchanged(value: str) -> None:
    config = Config.from_hyperparameters({**REQUIRED, "class_weights": value})
    assert Config.from_hyperparameters(config.to_hyperparameters()) == config


def test_every_bad_entry_is_named_in_one_message() -> None:
    message = rejected("1, x, -2, ")
    assert "class_weights" in message
    assert "entry 1 'x' is not a number" in message
    assert "entry 2 -2 is negative" in message
    assert "entry 3 '' is not a number" in message


def test_a_bad_list_is_reported_with_the_other_problems() -> None:
    message = rejected("1, -1, 1, 1", epochs="0")
    assert "entry 1 -1 is negative" in message and "epochs=0 is out of range" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1, 2, 3", "class_weights has 3 numbers but num_classes=4"),
        ("1, 2, 3, 4, 5", "class_weights has 5 numbers but num_classes=4"),
        ("0, 0, 0, 0", "every class the weight 0"),
        ("", "neither auto nor a list"),
        ("[]", "neither auto nor a list"),
        ("balanced", "entry 0 'balanced' is not a number"),
        ("1, inf, 1, 1", "entry 1 'inf' is not a number"),
    ],
)
def test_bad_forms(value: str, expected: str) -> None:
    assert expected in rejected(value)


def test_median_frequency_by_hand() -> None:
    pixels = np.array([900, 90, 10, 0])  # shares 0.9, 0.09, 0.01; class 3 absent
    raw = np.array([0.09 / 0.9, 1.0, 0.09 / 0.01, 1.0])  # the median share over the present classes is 0.09
    np.testing.assert_allclose(median_frequency(pixels), raw / raw.mean())


def test_median_frequency_is_clipped() -> None:
    pixels = np.array([100_000, 10, 1_000])
    share = pixels / pixels.sum()
    raw = np.clip(share[2] / share, 1 / CLIP, CLIP)
    assert raw[1] == CLIP and raw[0] == pytest.approx(1 / CLIP)
    np.testing.assert_allclose(median_frequency(pixels), raw / raw.mean())


def test_the_pixel_table_of_the_losses() -> None:
    table = pixel_weights(3, np.array([0.5, 1.0, 2.0], np.float32))
    assert table.shape == (256,) and list(table[:4]) == [0.5, 1.0, 2.0, 0.0] and table[255] == 0
    assert list(pixel_weights(3, None)[:4]) == [1.0, 1.0, 1.0, 0.0]


def hand_count(base: Path, classes: int) -> np.ndarray:
    masks = sorted((base / "input/data/train_annotation").glob("*.png"))
    counts = sum(np.bincount(np.asarray(Image.open(p)).reshape(-1), minlength=256) for p in masks)
    return np.asarray(counts)[:classes]


def test_auto_counts_the_training_masks_by_hand(tmp_path: Path) -> None:
    base = make_job(tmp_path / "ml", images=12, size=40, classes=IMBALANCED_CLASSES, imbalanced=True, seed=3)
    job = load_job(JobPaths(base))
    config = Config(num_classes=IMBALANCED_CLASSES, num_training_samples=12, class_weights="auto")
    counts = count_train_pixels(job, config, 0, list_channels(job)["train"])
    expected = hand_count(base, IMBALANCED_CLASSES)
    assert counts.masks == counts.of == 12
    np.testing.assert_array_equal(counts.pixels, expected)
    assert 0 < expected[2:].sum() < 0.02 * expected.sum()  # the generated set is imbalanced as documented
    weights = class_weights(job, config, 0, Part(), list_channels(job)["train"])
    assert weights is not None
    np.testing.assert_allclose(weights, median_frequency(expected), rtol=1e-6)
    companion = json.loads((base / "model/class_weights.json").read_text())
    assert companion["pixels"] == expected.tolist() and companion["masks_counted"] == 12
    rerun = Config.from_hyperparameters({**config.to_hyperparameters(), "class_weights": companion["hyperparameter"]})
    assert isinstance(rerun.class_weights, tuple)
    np.testing.assert_allclose(rerun.class_weights, weights, rtol=1e-5)  # a rerun can repeat them


def test_auto_samples_a_bounded_seeded_share(tmp_path: Path) -> None:
    base = make_job(tmp_path / "ml", images=10, size=32, seed=1)
    job = load_job(JobPaths(base))
    config = Config(num_classes=3, num_training_samples=10, class_weights="auto")
    first, again = (count_train_pixels(job, config, 5, list_channels(job)["train"], limit=4) for _ in range(2))
    assert (first.masks, first.of) == (4, 10)
    np.testing.assert_array_equal(first.pixels, again.pixels)
    chosen = sorted(np.random.default_rng(5).choice(10, 4, replace=False).tolist())
    masks = [base / f"input/data/train_annotation/{i:04d}.png" for i in chosen]
    hand = sum(np.bincount(np.asarray(Image.open(p)).reshape(-1), minlength=256) for p in masks)
    np.testing.assert_array_equal(first.pixels, np.asarray(hand)[:3])
    assert first.pixels.sum() < hand_count(base, 3).sum()


def test_a_list_is_used_as_given_and_written_beside_hyperparams(tmp_path: Path) -> None:
    base = make_job(tmp_path / "ml", images=4, size=32)
    config = Config(num_classes=3, num_training_samples=4, class_weights=(1.0, 2.0, 0.5))
    job = load_job(JobPaths(base))
    weights = class_weights(job, config, 0, Part(1, 2, 1, 2), list_channels(job)["train"])
    assert weights is not None
    np.testing.assert_array_equal(weights, np.array([1.0, 2.0, 0.5], np.float32))
    assert not (base / "model/class_weights.json").exists()  # only the leader writes


def test_auto_in_pipe_mode_says_to_pass_the_list(tmp_path: Path) -> None:
    base = make_job(tmp_path / "ml", images=4, size=32)
    job = dataclasses.replace(load_job(JobPaths(base)), pipes=frozenset({"train"}))
    config = Config(num_classes=3, num_training_samples=4, class_weights="auto")
    with pytest.raises(ClientError, match="Pipe mode.*Give class_weights as a list of num_classes"):
        class_weights(job, config, 0, Part(), None)
