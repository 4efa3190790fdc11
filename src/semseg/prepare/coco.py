"""COCO instances or stuff JSON (CVAT's, Label Studio's, Roboflow's exports) to index masks, through pycocotools
(polygons, RLE and uncompressed RLE alike; no hand-written rasteriser): category ids -> 0..N-1 in ascending id
order (with `--background NAME`, that name is class 0 and the categories follow); unannotated pixels 255, or the
background class; where regions overlap, the smaller one is on top (painted last); `iscrowd` regions 255, over
everything."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from semseg.contract.errors import ClientError
from semseg.data.labels import IGNORE
from semseg.prepare.layouts import Plan, Rule, Sample
from semseg.prepare.problems import NOT_THERE, Problem


class Drawing:
    """One COCO file's masks (the worker processes share it: made before they fork)."""

    def __init__(self, annotations: Path, background: str | None) -> None:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # its own progress lines, not the command's output
                self.coco = COCO(str(annotations))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ClientError(f"--annotations {annotations} is no COCO JSON: {type(exc).__name__}: {exc}") from None
        categories = sorted(self.coco.loadCats(self.coco.getCatIds()), key=lambda c: c["id"])
        shift = 1 if background else 0
        self.classes = ((background,) if background else ()) + tuple(str(c["name"]) for c in categories)
        self.class_of = {c["id"]: index + shift for index, c in enumerate(categories)}
        self.fill = 0 if background else IGNORE

    def mask(self, image_id: int) -> np.ndarray:
        info = self.coco.imgs[image_id]
        mask = np.full((info["height"], info["width"]), self.fill, np.uint8)
        annotations = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        regions = [(a, self.coco.annToRLE(a)) for a in annotations if a.get("category_id") in self.class_of]
        regular = sorted((r for r in regions if not r[0].get("iscrowd")), key=lambda r: -float(mask_utils.area(r[1])))
        for annotation, rle in regular:  # the largest first: a smaller region is painted over it
            mask[mask_utils.decode(rle) > 0] = self.class_of[annotation["category_id"]]
        for _annotation, rle in (r for r in regions if r[0].get("iscrowd")):
            mask[mask_utils.decode(rle) > 0] = IGNORE
        return mask


def coco(images: Path, drawing: Drawing) -> Plan:
    """Every image of the JSON, its file under `images` (a missing one is a problem)."""
    samples, problems = [], []
    for image_id, info in sorted(drawing.coco.imgs.items()):
        path = images / str(info["file_name"])
        if not path.is_file():
            problems.append(Problem(NOT_THERE, str(path), f"image id {image_id}"))
        else:
            samples.append(Sample("", str(Path(str(info["file_name"])).with_suffix("")), path, None, image_id))
    return Plan(drawing.classes, samples, Rule("coco"), problems)
