"""`semseg-prepare` (semseg.prepare) on small generated sets of each layout with their expected masks (VOC's palette
and lists, ADE20K's shift, Cityscapes' ids, COCO polygons, RLE, crowd and overlaps, colour tables, plain index
folders); every kind of bad input named, with nothing left behind; and a job that trains on each command's output."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from semseg.prepare.cli import main as prepare
from semseg.prepare.layouts import CITYSCAPES
from tests.settings import write_config

H, W = 24, 32
CHANNELS = ("train", "train_annotation", "validation", "validation_annotation")


def photo(path: Path, seed: int, fmt: str = "JPEG", size: tuple[int, int] = (W, H)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, fmt)
    return path


def png(path: Path, values: np.ndarray, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(values.astype(np.uint8), "L" if mode == "P" else mode)
    if mode == "P":
        picture = picture.convert("P")  # keeps the values as palette indices
        picture.putpalette(list(np.random.default_rng(0).integers(0, 256, 768)))
    picture.save(path, "PNG")
    return path


def values(seed: int, choices: list[int]) -> np.ndarray:
    return np.random.default_rng(seed).choice(choices, (H, W)).astype(np.uint8)


def written(out: Path, split: str, name: str) -> np.ndarray:
    return np.asarray(Image.open(out / f"{split}_annotation" / f"{name}.png"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = prepare([*argv, "--workers", "2"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_voc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "VOCdevkit" / "VOC2012"
    expected = {}
    for index, name in enumerate(["2007_000032", "2007_000033", "2007_000039"]):
        photo(base / "JPEGImages" / f"{name}.jpg", index)
        expected[name] = values(index, [0, 1, 15, 20, 255])
        png(base / "SegmentationClass" / f"{name}.png", expected[name], "P")
    (base / "ImageSets" / "Segmentation").mkdir(parents=True)
    (base / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n2007_000033\n")
    (base / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000039\n")
    code, text = run(capsys, "voc", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 0, text
    for name, split in (("2007_000032", "train"), ("2007_000033", "train"), ("2007_000039", "validation")):
        assert np.array_equal(written(tmp_path / "out", split, name), expected[name])
        image = tmp_path / "out" / split / f"{name}.jpg"
        assert image.read_bytes() == (base / "JPEGImages" / f"{name}.jpg").read_bytes(), "a JPEG is copied as it is"
    assert "num_classes=21 num_training_samples=2" in text and "aeroplane" in text and "Ignored (255): " in text
    assert f"aws s3 sync {tmp_path / 'out' / 'train'} s3://<bucket>/<prefix>/train/" in text


def test_ade20k_shifts_and_ignores_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = tmp_path / "ADEChallengeData2016"
    raw = {}
    for split, folder in (("train", "training"), ("validation", "validation")):
        for k in range(2):
            name = f"ADE_{folder}_{k:08d}"
            photo(base / "images" / folder / f"{name}.jpg", k)
            raw[name, split] = values(k + 7, [0, 1, 2, 75, 150])
            png(base / "annotations" / folder / f"{name}.png", raw[name, split])
    code, text = run(capsys, "ade20k", str(tmp_path), "--out", str(tmp_path / "out"))
    assert code == 0, text
    for (name, split), mask in raw.items():
        expected = np.where(mask == 0, 255, mask.astype(np.int64) - 1)
        assert np.array_equal(written(tmp_path / "out", split, name), expected)
    assert "num_classes=150 num_training_samples=2" in text


def test_cityscapes_label_ids_become_train_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = [0, 1, 7, 8, 26, 33, 34, 255]
    train_id = {label: index for index, label in enumerate(sorted(CITYSCAPES))}
    raw: dict[tuple[str, str], np.ndarray] = {}
    for split, folder in (("train", "train"), ("validation", "val")):
        name = f"aachen_00000{len(raw)}_000019"
        photo(tmp_path / "leftImg8bit" / folder / "aachen" / f"{name}_leftImg8bit.png", len(raw), "PNG")
        raw[name, split] = values(len(raw), ids)
        png(tmp_path / "gtFine" / folder / "aachen" / f"{name}_gtFine_labelIds.png", raw[name, split])
    code, text = run(capsys, "cityscapes", str(tmp_path), "--out", str(tmp_path / "out"), "--jpeg-quality", "90")
    assert code == 0, text
    for (name, split), mask in raw.items():
        expected = np.vectorize(lambda v: train_id.get(int(v), 255))(mask)
        assert np.array_equal(written(tmp_path / "out", split, name), expected)
        assert Image.open(tmp_path / "out" / split / f"{name}.jpg").format == "JPEG"  # PNG encoded once
    assert "num_classes=19" in text and "road" in text and "bicycle" in text


def coco_set(folder: Path, count: int = 6, missing: bool = False) -> tuple[Path, dict[int, np.ndarray]]:
    """Images with polygons (a large rectangle, a small one on top), an RLE blob and a crowd region; categories
    with ids 3, 7 and 12 (-> 0, 1, 2); the expected masks."""
    images, annotations, expected = [], [], {}
    blob = np.zeros((H, W), np.uint8, order="F")
    blob[2:6, 20:30] = 1
    rle = mask_utils.encode(np.asfortranarray(blob))
    rle["counts"] = rle["counts"].decode()
    for image_id in range(1, count + 1):
        name = f"img{image_id:03d}.jpg"
        if not (missing and image_id == count):
            photo(folder / "images" / name, image_id)
        images.append({"id": image_id, "file_name": name, "height": H, "width": W})
        big = [2, 8, 18, 8, 18, 22, 2, 22]  # x, y pairs: columns 2..17, rows 8..21
        small = [5, 10, 9, 10, 9, 14, 5, 14]  # inside it: columns 5..8, rows 10..13
        crowd = [25, 15, 30, 15, 30, 20, 25, 20]
        annotations += [
            {"id": 10 * image_id + 1, "image_id": image_id, "category_id": 3, "segmentation": [small], "area": 16.0,
             "bbox": [5, 10, 4, 4], "iscrowd": 0},  # listed first: drawn on top because it is smaller
            {"id": 10 * image_id + 2, "image_id": image_id, "category_id": 7, "segmentation": [big], "area": 224.0,
             "bbox": [2, 8, 16, 14], "iscrowd": 0},
            {"id": 10 * image_id + 3, "image_id": image_id, "category_id": 12, "segmentation": rle, "area": 40.0,
             "bbox": [20, 2, 10, 4], "iscrowd": 0},
            {"id": 10 * image_id + 4, "image_id": image_id, "category_id": 12, "segmentation": [crowd], "area": 25.0,
             "bbox": [25, 15, 5, 5], "iscrowd": 1},
        ]  # fmt: skip
        mask = np.full((H, W), 255, np.uint8)
        mask[8:22, 2:18] = 1
        mask[10:14, 5:9] = 0
        mask[2:6, 20:30] = 2
        mask[15:20, 25:30] = 255
        expected[image_id] = mask
    categories = [{"id": i, "name": n, "supercategory": "x"} for i, n in ((12, "cat"), (3, "bird"), (7, "dog"))]
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, expected


def test_coco_polygons_rle_crowd_and_overlaps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    annotations, expected = coco_set(tmp_path)
    out = tmp_path / "out"
    code, text = run(capsys, "coco", "--images", str(tmp_path / "images"), "--annotations", str(annotations),
                     "--out", str(out), "--validation-fraction", "0.34", "--s3-prefix", "s3://b/p")  # fmt: skip
    assert code == 0, text
    assert len(list((out / "validation").iterdir())) == 2 and len(list((out / "train").iterdir())) == 4
    for split in ("train", "validation"):
        for image in (out / split).iterdir():
            assert np.array_equal(written(out, split, image.stem), expected[int(image.stem[3:])]), image
    assert "  0 bird" in text and "  1 dog" in text and "  2 cat" in text and "num_classes=3" in text
    first = json.loads((out / "train.manifest").read_text().splitlines()[0])
    assert first["source-ref"].startswith("s3://b/p/train/img") and first["class-ref"].endswith(".png")
    code, text = run(capsys, "coco", "--images", str(tmp_path / "images"), "--annotations", str(annotations),
                     "--out", str(out), "--background", "sky", "--force")  # fmt: skip
    assert code == 0, text
    image = next((out / "train").iterdir())
    background = expected[int(image.stem[3:])].astype(np.int64) + 1
    background[expected[int(image.stem[3:])] == 255] = 0
    background[15:20, 25:30] = 255  # crowd stays ignored
    assert np.array_equal(written(out, "train", image.stem), background) and "  0 sky" in text


def test_colour_masks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = {"road": [128, 64, 128], "car": [0, 0, 142], "sky": [70, 130, 180]}
    (tmp_path / "colors.json").write_text(json.dumps(table))
    palette = np.array([*table.values(), [0, 0, 0]], np.uint8)
    expected = {}
    for k in range(5):
        photo(tmp_path / "images" / f"f{k}.png", k, "PNG")
        indices = values(k, [0, 1, 2, 3])
        png(tmp_path / "masks" / f"f{k}.png", palette[indices], "RGB")
        expected[f"f{k}"] = np.where(indices == 3, 255, indices)
    out = tmp_path / "out"
    given = ["--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--colors"]
    code, text = run(
        capsys, "colors", *given, str(tmp_path / "colors.json"), "--ignore-color", "0,0,0", "--out", str(out)
    )
    assert code == 0, text
    for split in ("train", "validation"):
        for image in (out / split).iterdir():
            assert np.array_equal(written(out, split, image.stem), expected[image.stem])


def folders_set(root: Path, count: int = 5) -> dict[str, np.ndarray]:
    expected = {}
    for k in range(count):
        photo(root / "images" / f"s{k}.jpg", k)
        expected[f"s{k}"] = values(k, [0, 1, 2, 255])
        png(root / "masks" / f"s{k}.png", expected[f"s{k}"])
    return expected


def test_plain_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = folders_set(tmp_path)
    out = tmp_path / "out"
    code, text = run(capsys, "folders", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--num-classes", "3", "--out", str(out), "--seed", "4")  # fmt: skip
    assert code == 0, text
    names = {split: sorted(p.stem for p in (out / split).iterdir()) for split in ("train", "validation")}
    assert len(names["validation"]) == 1 and sorted(names["train"] + names["validation"]) == sorted(expected)
    for split, stems in names.items():
        for stem in stems:
            assert np.array_equal(written(out, split, stem), expected[stem])


def nothing_left(tmp_path: Path) -> bool:
    return not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


BAD_FOLDERS = {
    "image without a mask": (lambda r: photo(r / "images" / "lonely.jpg", 9), "1 images without a mask: "),
    "mask without an image": (lambda r: png(r / "masks" / "orphan.png", values(1, [0])), "1 masks without an image"),
    "different sizes": (lambda r: photo(r / "images" / "s1.jpg", 1, size=(W + 2, H)), "1 images and masks of"),
    "value past the classes": (lambda r: png(r / "masks" / "s2.png", values(2, [0, 7])), "1 mask values past the"),
    "truncated": (lambda r: (r / "images" / "s3.jpg").write_bytes((r / "images" / "s3.jpg").read_bytes()[:200]),
                  "1 unreadable or truncated files"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_input_is_named_and_nothing_is_left(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders_set(tmp_path)
    damage, words = BAD_FOLDERS[case]
    damage(tmp_path)
    code, text = run(capsys, "folders", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--num-classes", "3", "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and words in text and "nothing written" in text, text
    line = next(line for line in text.splitlines() if words in line)
    assert ". Fix: " in line, "each kind of problem says what to do"
    assert nothing_left(tmp_path)


def test_an_unknown_colour_is_named_with_its_pixels_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "colors.json").write_text(json.dumps({"a": [1, 2, 3], "b": [4, 5, 6]}))
    for k in range(3):
        photo(tmp_path / "images" / f"c{k}.jpg", k)
        mask = np.zeros((H, W, 3), np.uint8) + np.array([1, 2, 3], np.uint8)
        mask[: k + 1, :2] = (9, 9, 9)  # an unknown colour: 2, 4 and 6 pixels
        png(tmp_path / "masks" / f"c{k}.png", mask, "RGB")
    code, text = run(capsys, "colors", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"),
                     "--colors", str(tmp_path / "colors.json"), "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2, text
    assert "1 colours that are no class and not ignored: (9,9,9) (12 px in 3 mask(s), first " in text
    assert str(tmp_path / "masks" / "c0.png") in text and nothing_left(tmp_path)


def test_a_coco_image_that_is_not_there_and_an_empty_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    annotations, _ = coco_set(tmp_path, count=2, missing=True)
    code, text = run(capsys, "coco", "--images", str(tmp_path / "images"), "--annotations", str(annotations),
                     "--out", str(tmp_path / "out"))  # fmt: skip
    assert code == 2 and "1 COCO images that are not there: " in text and "img002.jpg (image id 2)" in text, text
    assert "1 empty splits: validation" in text and nothing_left(tmp_path)


def test_a_non_empty_out_needs_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folders_set(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    args = ["folders", "--images", str(tmp_path / "images"), "--masks", str(tmp_path / "masks"), "--num-classes", "3"]
    code, text = run(capsys, *args, "--out", str(tmp_path / "out"))
    assert code == 2 and "is not empty: give --force" in text and (tmp_path / "out" / "keep.txt").exists()


@pytest.mark.slow
def test_a_job_trains_on_each_commands_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], train_job) -> None:
    """The channels of two commands (an index layout and COCO), with the num_classes and num_training_samples they
    printed, train a job; the others write the same kind of files (their masks are compared above)."""
    folders_set(tmp_path / "folders", count=6)
    annotations, _ = coco_set(tmp_path / "coco")
    commands = {
        "folders": ["folders", "--images", str(tmp_path / "folders" / "images"), "--masks",
                    str(tmp_path / "folders" / "masks"), "--num-classes", "3"],
        "coco": ["coco", "--images", str(tmp_path / "coco" / "images"), "--annotations", str(annotations)],
    }  # fmt: skip
    for name, argv in commands.items():
        out = tmp_path / f"out-{name}"
        code, text = run(capsys, *argv, "--out", str(out), "--validation-fraction", "0.34")
        assert code == 0, text
        found = re.search(r"num_classes=(\d+) num_training_samples=(\d+)", text)
        assert found is not None, text
        classes, samples = int(found[1]), int(found[2])
        base = tmp_path / f"job-{name}"
        for channel in CHANNELS:
            shutil.copytree(out / channel, base / "input" / "data" / channel)
        hyperparameters = {"num_classes": classes, "num_training_samples": samples, "use_pretrained_model": False}
        hyperparameters |= {"crop_size": 24, "epochs": 1, "mini_batch_size": 2, "validation_mini_batch_size": 1}
        write_config(base, "hyperparameters.json", {k: str(v) for k, v in hyperparameters.items()})
        write_config(base, "inputdataconfig.json", {c: {"TrainingInputMode": "File"} for c in CHANNELS})
        run_ = train_job(base=base)
        assert run_.code == 0, run_.log[-3000:]
        assert len(run_.metric("validation:mIOU")) == 1
