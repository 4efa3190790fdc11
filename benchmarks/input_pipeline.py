"""Input pipeline alone (decode + augment + batch), images/s in one process, ours vs GluonCV's.

Both do GluonCV's training augmentation (random mirror, random scale of base_size, pad, random crop,
random blur) on the same VOC-sized JPEGs. GluonCV: PIL decoding, `SegmentationDataset._sync_transform`,
then ToTensor + Normalize per sample (as its training script), stacked into a batch. Ours: OpenCV
decoding, `semseg.data.transforms.gluoncv_train`, uint8 batches (normalised later on the device).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from gluoncv.data.segbase import SegmentationDataset as GluonCVSegmentationDataset
from mxnet.gluon.data import DataLoader
from mxnet.gluon.data.vision import transforms as vt
from PIL import Image

from benchmarks.common import alternate, median, rate, save, table
from semseg.data.channels import Pair
from semseg.data.dataset import SegmentationDataset
from semseg.data.labels import identity
from semseg.data.samplers import SeededBatchSampler
from semseg.data.transforms import gluoncv_train
from semseg.engines.normalization import MEAN, STD
from semseg.example import draw_sample

BASE_SIZE = 520


def make_images(folder: Path, count: int) -> list[Pair]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for i in range(count):
        h, w = (375, 500) if i % 2 else (500, 375)
        image, mask = draw_sample(rng, h, w, 21)
        image.save(folder / f"{i}.jpg", quality=90)
        mask.save(folder / f"{i}.png")
        pairs.append(Pair(folder / f"{i}.jpg", folder / f"{i}.png", h, w))
    return pairs


class GluonCVPipeline(GluonCVSegmentationDataset):
    """GluonCV's own dataset code path (as its VOCSegmentation.__getitem__ in train mode)."""

    def __init__(self, pairs: list[Pair], crop: int) -> None:
        transform = vt.Compose([vt.ToTensor(), vt.Normalize(MEAN, STD)])
        super().__init__(
            root=".", split="train", mode="train", transform=transform, base_size=BASE_SIZE, crop_size=crop
        )
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
        pair = self.pairs[index]
        image = Image.open(pair.image).convert("RGB")
        mask = Image.open(pair.mask)
        image, mask = self._sync_transform(image, mask)
        return self.transform(image), mask


def measure(pairs: list[Pair], crop: int, batch: int, rounds: int) -> dict[str, Any]:
    ours_set = SegmentationDataset(pairs, identity(21), gluoncv_train(crop, BASE_SIZE))
    ours_loader = DataLoader(
        ours_set, batch_sampler=SeededBatchSampler(len(pairs), batch, shuffle=True, drop_last=True, seed=0)
    )
    theirs_loader = DataLoader(GluonCVPipeline(pairs, crop), batch_size=batch, shuffle=True, last_batch="discard")

    def run(loader: DataLoader) -> int:
        count = 0
        for images, _ in loader:
            images.wait_to_read()
            count += images.shape[0]
        return count

    rates = alternate(
        {"ours": lambda: rate(lambda: run(ours_loader)), "gluoncv": lambda: rate(lambda: run(theirs_loader))}, rounds
    )
    ours, theirs = median(rates["ours"]), median(rates["gluoncv"])
    return {"crop": crop, "ours": ours, "gluoncv": theirs, "ratio": ours / theirs, "runs": rates}


def main(work: Path, quick: bool = False) -> list[dict[str, Any]]:
    pairs = make_images(work / "pipeline", 16 if quick else 48)
    results = [measure(pairs, crop, batch=4, rounds=2 if quick else 3) for crop in (240, 480)]
    print(
        table(
            "Input pipeline (images/s, one process; decode + augment + batch), ours vs GluonCV's",
            ["crop", "ours", "gluoncv", "ratio"],
            [[r["crop"], r["ours"], r["gluoncv"], r["ratio"]] for r in results],
        )
    )
    at480 = next(r for r in results if r["crop"] == 480)
    print(f"goal: crop 480 >= 1.5x -> {at480['ratio']:.2f}x {'met' if at480['ratio'] >= 1.5 else 'MISSED'}\n")
    save("input_pipeline", {"results": results, "goal": 1.5})
    return results
