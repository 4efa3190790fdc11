"""Label maps and bad data through a whole job: a bad file ends in a ClientError that names it.

Each damaged file is a row of test_hostile_data.py's table; here are the label maps and the channel-level cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from semseg.example import make_job


def remap_masks(base: Path, table: dict[int, int]) -> None:
    for split in ("train_annotation", "validation_annotation"):
        for path in (base / "input" / "data" / split).glob("*.png"):
            mask = np.asarray(Image.open(path)).copy()
            out = mask.copy()
            for src, dst in table.items():
                out[mask == src] = dst
            Image.fromarray(out, "L").save(path)


def add_label_map(base: Path, name: str, content: object) -> None:
    folder = base / "input" / "data" / "label_map"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(content))


def job(tmp_path: Path, **hp: object) -> Path:
    return make_job(tmp_path / "ml", images=4, size=32, hyperparameters={"epochs": 1, "mini_batch_size": 2, **hp})


def test_scale_label_map(train_job, tmp_path: Path) -> None:
    base = job(tmp_path)
    remap_masks(base, {1: 3, 2: 6})
    without = train_job(base=base)
    assert without.code == 2 and "that are not classes under the label map" in without.failure
    (base / "output" / "failure").unlink()
    add_label_map(base, "train_label_map.json", {"scale": "3"})
    run = train_job(base=base)
    assert run.code == 0, run.failure
    assert any("Label map for validation: scale=3" in m for m in run.messages)


def test_explicit_label_map(train_job, tmp_path: Path) -> None:
    base = job(tmp_path)
    remap_masks(base, {0: 5, 1: 0})
    add_label_map(base, "train_label_map.json", {"map": {"0": 5, "1": 0, "2": 2}})
    add_label_map(base, "validation_label_map.json", {"map": {"0": 5, "1": 0, "2": 2}})
    run = train_job(base=base)
    assert run.code == 0, run.failure


def test_too_few_training_pairs_for_a_batch(train_job, tmp_path: Path) -> None:
    run = train_job(base=job(tmp_path, mini_batch_size=8, num_training_samples=8))
    assert run.code == 2 and "has 4 usable pairs, fewer than mini_batch_size=8" in run.failure


def test_empty_train_channel_is_named(train_job, tmp_path: Path) -> None:
    """(An empty validation channel is a row of test_hostile_data.py's table.)"""
    base = job(tmp_path)
    for path in (base / "input" / "data" / "train").iterdir():
        path.unlink()
    run = train_job(base=base)
    assert run.code == 2 and "Channel 'train' has no usable image/annotation pairs" in run.failure
