"""`semseg-prepare coco` on a generated set of a few thousand images (polygons, RLE and a crowd region each) against
a plain single-process loop with pycocotools (the reference: read the image, draw the mask with annToMask, write
the JPEG copy and the PNG), in the same run; images/s and the peak memory of each (the processes' high-water RSS).
Goal (issue 40): at least 1.8x on 2 cores, memory flat (a worker's does not grow with the images; the parent holds
the COCO index, as the loop does)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import median, save, table

SIZE = (640, 480)  # width, height: COCO's usual size


def make_set(folder: Path, count: int) -> Path:
    """`count` JPEGs and a COCO JSON: two polygons and an RLE region per image, every tenth with a crowd region."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True)
    blob = np.zeros((SIZE[1], SIZE[0]), np.uint8, order="F")
    blob[20:60, 200:300] = 1
    rle = mask_utils.encode(np.asfortranarray(blob))
    rle["counts"] = rle["counts"].decode()
    images: list[dict] = []
    annotations: list[dict] = []
    for image_id in range(1, count + 1):
        name = f"{image_id:06d}.jpg"
        pixels = rng.integers(0, 256, (SIZE[1] // 8, SIZE[0] // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(pixels).save(folder / "images" / name, quality=90)
        images.append({"id": image_id, "file_name": name, "height": SIZE[1], "width": SIZE[0]})
        x, y = int(rng.integers(0, 150)), int(rng.integers(0, 100))
        polygons = [[x, y, x + 150, y, x + 150, y + 120, x, y + 120], [x + 20, y + 20, x + 60, y + 30, x + 40, y + 80]]
        regions = [([polygon], index + 1, 0) for index, polygon in enumerate(polygons)]
        regions.append((rle, 3, int(image_id % 10 == 0)))
        for segmentation, category, crowd in regions:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category,
                    "segmentation": segmentation,
                    "area": 1.0,
                    "bbox": [0, 0, 1, 1],
                    "iscrowd": crowd,
                }
            )
    categories = [{"id": i, "name": f"c{i}", "supercategory": "x"} for i in (1, 2, 3)]
    path = folder / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


REFERENCE = """
import sys, shutil
from pathlib import Path
import numpy as np
from PIL import Image
from pycocotools.coco import COCO
images, annotations, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
coco = COCO(annotations)
classes = {c: i for i, c in enumerate(sorted(coco.getCatIds()))}
(out / "train").mkdir(parents=True); (out / "train_annotation").mkdir(parents=True)
for image_id, info in coco.imgs.items():
    Image.open(images / info["file_name"]).load()
    mask = np.full((info["height"], info["width"]), 255, np.uint8)
    for a in sorted(coco.loadAnns(coco.getAnnIds(imgIds=[image_id])), key=lambda a: -a["area"]):
        mask[coco.annToMask(a) > 0] = 255 if a["iscrowd"] else classes[a["category_id"]]
    shutil.copyfile(images / info["file_name"], out / "train" / info["file_name"])
    Image.fromarray(mask).save(out / "train_annotation" / (info["file_name"][:-4] + ".png"))
"""


MEASURE = (
    "import resource, subprocess, sys, time; start = time.perf_counter(); "
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
)


def timed(command: list[str]) -> tuple[float, float]:
    """(seconds, the peak RSS in MB of the largest process of the command's tree), in a fresh measuring process."""
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True)
    seconds, peak = (float(v) for v in done.stdout.split())
    return seconds, peak


def run_both(work: Path, annotations: Path, count: int, rounds: int) -> dict[str, tuple[float, float]]:
    results: dict[str, list[tuple[float, float]]] = {"prepare coco (all cores)": [], "pycocotools loop": []}
    for round_ in range(rounds):
        out = work / f"out-{count}-{round_}"
        ours = [sys.executable, "-m", "semseg.prepare", "coco", "--images", str(work / "images"), "--annotations",
                str(annotations), "--out", str(out / "ours"), "--workers", str(os.cpu_count() or 1)]  # fmt: skip
        plain = [sys.executable, "-c", REFERENCE, str(work / "images"), str(annotations), str(out / "plain")]
        results["prepare coco (all cores)"].append(timed(ours))
        results["pycocotools loop"].append(timed(plain))
        shutil.rmtree(out)
    return {name: (count / median([s for s, _ in runs]), max(m for _, m in runs)) for name, runs in results.items()}


def main(quick: bool = False) -> None:
    count = 600 if quick else 3000
    with tempfile.TemporaryDirectory(prefix="semseg-bench-prepare-") as folder:
        work = Path(folder)
        annotations = make_set(work, count)
        small = make_set(work / "small", 500)
        rows, payload = [], {}
        for images, path in ((500, small), (count, annotations)):
            rates = run_both(path.parent, path, images, rounds=1 if quick else 2)
            reference = rates["pycocotools loop"][0]
            for name, (per_second, peak) in rates.items():
                rows.append([name, images, per_second, per_second / reference, peak])
                payload[f"{name} ({images})"] = {"images_per_s": per_second, "ratio": per_second / reference,
                                                 "peak_mb": peak}  # fmt: skip
    print(table("prepare coco: images/s against a plain pycocotools loop", ["run", "images", "images/s", "x loop",
                                                                           "peak MB"], rows))  # fmt: skip
    print(f"\nwrote {save('prepare_coco', payload)}")
