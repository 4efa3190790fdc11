"""A small, easy, generated data set laid out as a SageMaker job folder (for `make demo` and tests).

Images: noisy backgrounds with colour-coded shapes (class 1: red discs, class 2: green squares, ...);
masks: the class ids as grayscale PNGs, with a 255 (ignore) rim around each shape. A network learns it
within a few epochs, so mIOU well above chance shows that training works. `main` (and so `make demo`)
writes LEARNING_HYPERPARAMETERS, the settings that learn it in about eight epochs from scratch whatever the
seed (SGD at a high learning rate can diverge on so few images; the job then stops with an AlgorithmError).

    python -m semseg.example DIR [--images 32] [--size 48] [--classes 3] [--epochs 8]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Adam learns the example from scratch within ~8 epochs of 32 images (seen on seeds 0-2: best mIOU 0.61-0.77
# against 0.23 for predicting the majority class everywhere).
LEARNING_HYPERPARAMETERS = {"optimizer": "adam", "learning_rate": "0.001"}
COLOURS = [(220, 40, 40), (40, 200, 60), (40, 80, 230), (230, 200, 30), (200, 40, 200)]


def background(rng: np.random.Generator, height: int, width: int) -> tuple[Image.Image, Image.Image]:
    """Noise around a random grey-ish colour, all class 0."""
    base = rng.integers(60, 140, size=3)
    noise = rng.normal(0, 12, size=(height, width, 3))
    image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
    return image, Image.new("L", (width, height), 0)


def draw_sample(rng: np.random.Generator, height: int, width: int, classes: int) -> tuple[Image.Image, Image.Image]:
    """One image (RGB) and its mask (L) with a few shapes of classes 1..classes-1."""
    image, mask = background(rng, height, width)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, classes))
        r = int(rng.integers(max(3, min(height, width) // 8), max(4, min(height, width) // 3)))
        cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
        box = (cx - r, cy - r, cx + r, cy + r)
        shape = draw_image.ellipse if cls % 2 else draw_image.rectangle
        shape(box, fill=COLOURS[(cls - 1) % len(COLOURS)])
        (draw_mask.ellipse if cls % 2 else draw_mask.rectangle)(box, fill=cls, outline=255)
    return image, mask


IMBALANCED_CLASSES = 5  # background, building, and the rare pole, sign and pedestrian
RARE_CLASSES = (2, 3, 4)


def draw_imbalanced_sample(
    rng: np.random.Generator, height: int, width: int, classes: int = IMBALANCED_CLASSES
) -> tuple[Image.Image, Image.Image]:
    """A street-like scene: noisy background (class 0), a large building block (class 1, about a third of the
    image), and thin or small objects of classes 2-4 (a pole 1/48 of the image wide, a small sign and a small
    pedestrian, each of these two in 70% of the images): about 1.5% of the pixels together, as in street
    scenes. `classes` must be 5."""
    assert classes == IMBALANCED_CLASSES
    image, mask = background(rng, height, width)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    top = int(rng.integers(0, height // 3))
    left = int(rng.integers(0, width // 2))
    box = (left, top, left + width // 2, top + height * 2 // 3)
    draw_image.rectangle(box, fill=COLOURS[0])
    draw_mask.rectangle(box, fill=1)
    side = min(height, width)
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height // 2))  # a pole: thin, half the height
    pole = (x, y, min(width, x + max(1, side // 48)) - 1, y + height // 2 - 1)
    draw_image.rectangle(pole, fill=COLOURS[1])
    draw_mask.rectangle(pole, fill=2)
    for cls, w, h in ((3, side // 12, side // 12), (4, max(1, side // 24), side // 8)):  # a sign, a pedestrian
        if rng.random() < 0.7:
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            draw_image.rectangle((x, y, x + w - 1, y + h - 1), fill=COLOURS[cls - 1])
            draw_mask.rectangle((x, y, x + w - 1, y + h - 1), fill=cls)
    return image, mask


def write_split(
    root: Path,
    split: str,
    count: int,
    rng: np.random.Generator,
    sizes: list[tuple[int, int]],
    classes: int,
    imbalanced: bool = False,
) -> None:
    images, masks = root / split, root / f"{split}_annotation"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    draw = draw_imbalanced_sample if imbalanced else draw_sample
    for i in range(count):
        h, w = sizes[i % len(sizes)]
        image, mask = draw(rng, h, w, classes)
        image.save(images / f"{i:04d}.jpg", quality=95)
        mask.save(masks / f"{i:04d}.png")


def make_job(
    base: Path,
    *,
    images: int = 16,
    validation_images: int | None = None,
    size: int = 64,
    classes: int = 3,
    hyperparameters: dict[str, Any] | None = None,
    seed: int = 0,
    varied_sizes: bool = False,
    imbalanced: bool = False,
) -> Path:
    """Write a complete job folder under `base` (the future /opt/ml); return `base`. `imbalanced`: the scenes
    of draw_imbalanced_sample (`classes` must be 5)."""
    rng = np.random.default_rng(seed)
    data = base / "input" / "data"
    sizes = [(size, size)]
    if varied_sizes:
        sizes = [(size, size), (size + 8, size - 8), (size - 8, size + 24)]
    write_split(data, "train", images, rng, sizes, classes, imbalanced)
    write_split(data, "validation", validation_images or max(2, images // 4), rng, sizes, classes, imbalanced)
    hp = {
        "num_classes": str(classes),
        "num_training_samples": str(images),
        "crop_size": str(size),
        "use_pretrained_model": "False",
        "epochs": "3",
        "mini_batch_size": "4",
        "validation_mini_batch_size": "4",
        "learning_rate": "0.01",
    }
    hp.update({k: str(v) for k, v in (hyperparameters or {}).items()})
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    channel = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
    (config / "hyperparameters.json").write_text(json.dumps(hp, indent=2))
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {
                name: dict(channel, ContentType="image/jpeg" if "annotation" not in name else "image/png")
                for name in ("train", "validation", "train_annotation", "validation_annotation")
            },
            indent=2,
        )
    )
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"})
    )
    return base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the job folder to create (it becomes SAGEMAKER_BASE_DIR)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    make_job(
        args.base,
        images=args.images,
        size=args.size,
        classes=args.classes,
        hyperparameters={**LEARNING_HYPERPARAMETERS, "epochs": args.epochs, "num_training_samples": args.images},
    )
    print(args.base)


if __name__ == "__main__":
    main()
