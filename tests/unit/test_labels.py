from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semseg.contract.errors import ClientError
from semseg.data.labels import load_label_map, parse_label_map


def write(folder: Path, name: str, content: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_default_is_identity_with_ignore(tmp_path: Path) -> None:
    label_map = load_label_map(None, "train", 3)
    mask = np.array([[0, 1, 2, 255]], dtype=np.uint8)
    assert label_map.apply(mask, "m.png").tolist() == [[0, 1, 2, 255]]


def test_values_outside_the_classes_name_the_file_and_values() -> None:
    label_map = load_label_map(None, "train", 3)
    with pytest.raises(ClientError, match=r"Annotation bad\.png has pixel values \[3, 7\]"):
        label_map.apply(np.array([[0, 3, 7, 3]], dtype=np.uint8), "bad.png")


@pytest.mark.parametrize("scale", [3, "3"])
def test_scale_divides_pixels_and_keeps_ignore(tmp_path: Path, scale: object) -> None:
    write(tmp_path, "train_label_map.json", {"scale": scale})
    label_map = load_label_map(tmp_path, "train", 3)
    mask = np.array([[0, 2, 3, 5, 6, 8, 255]], dtype=np.uint8)
    assert label_map.apply(mask, "m").tolist() == [[0, 0, 1, 1, 2, 2, 255]]
    with pytest.raises(ClientError):
        label_map.apply(np.array([[9]], dtype=np.uint8), "m")


def test_explicit_map_from_the_contract(tmp_path: Path) -> None:
    write(tmp_path, "validation_label_map.json", {"map": {"0": 5, "1": 0, "2": 2}})
    label_map = load_label_map(tmp_path, "validation", 3)
    assert label_map.apply(np.array([[5, 0, 2, 255]], dtype=np.uint8), "m").tolist() == [[0, 1, 2, 255]]
    with pytest.raises(ClientError, match=r"valid pixel values are \[0, 2, 5, 255\]"):
        label_map.apply(np.array([[1]], dtype=np.uint8), "m")


def test_validation_falls_back_to_the_train_map(tmp_path: Path) -> None:
    write(tmp_path, "train_label_map.json", {"scale": 2})
    label_map = load_label_map(tmp_path, "validation", 3)
    assert label_map.apply(np.array([[5]], dtype=np.uint8), "m").tolist() == [[2]]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ([1], '"scale" or "map"'),
        ({"scale": 0}, "scale"),
        ({"scale": "x"}, "scale"),
        ({"map": {}}, "non-empty"),
        ({"map": {"3": 1}}, "class id 3 is out of range for num_classes=3"),
        ({"map": {"0": 256}}, "pixel value 256"),
        ({"map": {"0": 1, "1": 1}}, "mapped to two classes"),
        ({"map": {"a": 1}}, "not an integer pair"),
    ],
)
def test_bad_label_maps_name_the_file(tmp_path: Path, content: object, message: str) -> None:
    path = write(tmp_path, "train_label_map.json", content)
    with pytest.raises(ClientError, match=r"train_label_map\.json") as info:
        parse_label_map(path, 3)
    assert message in str(info.value)
