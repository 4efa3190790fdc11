"""Class imbalance: the plain loss against class_weights=auto, and plain prediction against test-time
augmentation, on a generated data set where three classes are thin or small objects under 2% of the pixels
together (semseg.example.draw_imbalanced_sample: poles, signs, pedestrians beside background and buildings).

Every job trains from scratch through `train` (MXNet engine, CPU) with the same budget (epochs, images, seed);
each model is then scored on the validation images at their own size by the server's predictor, plain, with
`tta=flip`, and with flip plus scales 0.75,1,1.25, with the time per image of each. Reported: mIOU, the rare
classes' mean IoU, IoU per class, and the auto-weight pass's time against one epoch.

    python -m benchmarks imbalanced [--quick]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.common import save, table
from semseg.example import IMBALANCED_CLASSES, LEARNING_HYPERPARAMETERS, RARE_CLASSES, make_job

SEEDS = (0, 1)
PREDICTIONS = {"plain": "", "flip": "tta=flip", "flip+3 scales": "tta=flip;scales=0.75,1,1.25"}


def train(
    base: Path, weights: str | None, seed: int, images: int, size: int, epochs: int, algorithm: str = "fcn"
) -> dict[str, Any]:
    hp = {**LEARNING_HYPERPARAMETERS, "epochs": epochs, "num_training_samples": images, "validation_mini_batch_size": 1}
    hp["algorithm"] = algorithm
    if weights:
        hp["class_weights"] = weights
    make_job(
        base, images=images, validation_images=max(8, images // 4), size=size, classes=IMBALANCED_CLASSES,
        hyperparameters=hp, seed=seed, imbalanced=True,
    )  # fmt: skip
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base), "SEMSEG_SEED": str(seed), "SEMSEG_WATCH": "false"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "semseg", "train"], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    seconds = time.perf_counter() - start
    log = done.stdout + done.stderr
    counted = re.search(r"counted in ([0-9.]+) s", log)
    speeds = [float(t) for t in re.findall(r"train throughput: ([0-9.]+) samples/sec", log)]
    epoch_times = [images / speed for speed in speeds]
    return {"train_s": seconds, "count_s": float(counted.group(1)) if counted else None, "epoch_s": epoch_times}


def score(base: Path, augmentation: str) -> tuple[np.ndarray, float]:
    """Per-class IoU on the validation images with the best weights, and seconds per image."""
    import mxnet as mx

    from semseg.contract.model_folder import read_model_folder
    from semseg.engines.mxnet.network import load_model
    from semseg.engines.mxnet.predict import Predictor
    from semseg.measures.confusion import ConfusionMatrix
    from semseg.serving import tta

    folder = read_model_folder(base / "model", "the benchmark's model")
    predictor = Predictor(load_model(folder, [mx.cpu()]), mx.cpu(), folder.config.crop_size, 10**6)
    matrix = ConfusionMatrix(IMBALANCED_CLASSES)
    plan = tta.parse(augmentation)
    images = sorted((base / "input/data/validation").glob("*.jpg"))
    tta.classes(predictor, np.asarray(Image.open(images[0]).convert("RGB")), plan)  # warm-up: graph tracing
    elapsed = 0.0
    for path in images:
        image = np.asarray(Image.open(path).convert("RGB"))
        mask = np.asarray(Image.open(base / "input/data/validation_annotation" / f"{path.stem}.png"))
        start = time.perf_counter()
        predicted = tta.classes(predictor, image, plan)
        elapsed += time.perf_counter() - start
        matrix.add(mask, predicted, 255)
    return matrix.iou, elapsed / len(images)


def main(quick: bool = False) -> None:
    images, size, epochs = (32, 64, 12) if quick else (32, 64, 24)  # 192 updates: the rare classes start to show
    work = Path(os.environ.get("SEMSEG_BENCH_DIR", "/tmp/semseg-bench-imbalanced"))
    rows, payload = [], []
    for seed in SEEDS[:1] if quick else SEEDS:
        for weights in (None, "auto"):
            base = work / f"seed{seed}-{weights or 'plain'}"
            timing = train(base, weights, seed, images, size, epochs)
            for name, augmentation in PREDICTIONS.items():
                iou, seconds = score(base, augmentation)
                rare = float(iou[list(RARE_CLASSES)].mean())
                rows.append([seed, weights or "unset", name, float(iou.mean()), rare, *map(float, iou), seconds * 1e3])
                payload.append({"seed": seed, "class_weights": weights, "prediction": name, "iou": iou.tolist(),
                                "ms_per_image": seconds * 1e3, **timing})  # fmt: skip
    header = ["seed", "class_weights", "prediction", "mIOU", "rare IoU", *[f"IoU {c}" for c in range(5)], "ms/image"]
    title = f"Imbalanced data: {images} images {size}x{size}, {epochs} epochs from scratch (classes 2-4 rare)"
    print(table(title, header, rows))
    print(json.dumps({"count_s": [p["count_s"] for p in payload if p["count_s"]], "epoch_s": payload[0]["epoch_s"]}))
    save("imbalanced", {"images": images, "size": size, "epochs": epochs, "runs": payload})


if __name__ == "__main__":
    main("--quick" in sys.argv)
