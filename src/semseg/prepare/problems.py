"""Bad input, named and grouped: each problem is a kind (the same words for every layout), the file (or colour,
or split) it is about, and what was found; the command prints one line per kind with its count and the first files,
and exits without leaving a channel folder."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

SHOWN = 5  # files a line names

NO_MASK = "images without a mask"
NO_IMAGE = "masks without an image"
SIZES = "images and masks of different sizes"
COLOUR = "colours that are no class and not ignored"
VALUE = "mask values past the classes"
UNREADABLE = "unreadable or truncated files"
NOT_THERE = "COCO images that are not there"
EMPTY = "empty splits"
NAMES = "files of the same name in one split"
FIXES = {  # what to do about each kind, after its line
    NO_MASK: "give each image the mask of the same name (relative path without suffix), or remove it",
    NO_IMAGE: "give each mask its image of the same name, or remove it",
    SIZES: "each mask must have its image's height and width: re-export it, or resize it with nearest neighbour",
    COLOUR: "add the colour to the --colors table, or pass it as --ignore-color R,G,B",
    VALUE: "raise --num-classes to cover them, or map them to class ids (255 is ignored)",
    UNREADABLE: "download or export the file again, or remove it",
    NOT_THERE: "point --images at the folder of this annotation file's images",
    EMPTY: "give the split images, or a --validation-fraction above 0",
    NAMES: "rename one of them: pairs are matched by name, whatever the suffix",
}


@dataclass(frozen=True)
class Problem:
    kind: str
    subject: str  # the file, colour or split
    detail: str = ""

    def text(self) -> str:
        return f"{self.subject} ({self.detail})" if self.detail else self.subject


def report(problems: Iterable[Problem]) -> str:
    """One line per kind: how many, and the first of them."""
    grouped: dict[str, list[Problem]] = defaultdict(list)
    for problem in problems:
        grouped[problem.kind].append(problem)
    lines = []
    for kind, found in grouped.items():
        found = sorted(found, key=lambda p: p.subject)
        more = f", and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        fix = f". Fix: {FIXES[kind]}" if kind in FIXES else ""
        lines.append(f"{len(found)} {kind}: {'; '.join(p.text() for p in found[:SHOWN])}{more}{fix}")
    return "\n".join(lines)
