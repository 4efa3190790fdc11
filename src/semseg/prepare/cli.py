"""`semseg-prepare` (also `python -m semseg.prepare`, and `docker run --rm -v "$PWD:/data" IMAGE prepare ...`):

    semseg-prepare voc ROOT --out DIR
    semseg-prepare ade20k ROOT --out DIR
    semseg-prepare cityscapes ROOT --out DIR
    semseg-prepare coco --images DIR --annotations FILE [--background NAME] --out DIR
    semseg-prepare colors --images DIR --masks DIR --colors FILE [--ignore-color R,G,B ...] --out DIR
    semseg-prepare folders --images DIR --masks DIR --num-classes N --out DIR
    common: [--validation-fraction F] [--seed S] [--jpeg-quality Q] [--workers N] [--force] [--s3-prefix s3://...]

Writes OUT/{train,train_annotation,validation,validation_annotation} in a temporary folder beside OUT, renamed into
place only when every pair passed; prints what a job needs. Exit codes: 0 done, 2 bad input (every problem named,
grouped by kind, nothing left behind).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from semseg.contract.errors import ClientError
from semseg.prepare import layouts
from semseg.prepare.coco import Drawing, coco
from semseg.prepare.convert import Job, convert_all
from semseg.prepare.layouts import Plan, Sample
from semseg.prepare.problems import COLOUR, NAMES, Problem, report
from semseg.prepare.report import pipe_mode_note, summary, write_manifests

EXIT_BAD_INPUT = 2
PLACEHOLDER = "s3://<bucket>/<prefix>"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="semseg-prepare", description="Your labels into the algorithm's channels.")
    layouts_ = top.add_subparsers(dest="layout", required=True)
    for name, what in (("voc", "VOC2012"), ("ade20k", "ADEChallengeData2016"), ("cityscapes", "Cityscapes")):
        layouts_.add_parser(name, help=f"a {what} folder").add_argument("root", type=Path)
    sub = layouts_.add_parser("coco", help="a COCO instances or stuff JSON and its images")
    sub.add_argument("--images", type=Path, required=True)
    sub.add_argument("--annotations", type=Path, required=True)
    sub.add_argument("--background", help="unannotated pixels become this class (class 0), not 255")
    sub = layouts_.add_parser("colors", help="RGB colour masks and a colour table")
    sub.add_argument("--images", type=Path, required=True)
    sub.add_argument("--masks", type=Path, required=True)
    sub.add_argument("--colors", type=Path, required=True, help="JSON: class name -> [r, g, b], in class order")
    sub.add_argument("--ignore-color", action="append", default=[], type=_rgb, help="R,G,B -> 255 (repeatable)")
    sub = layouts_.add_parser("folders", help="images and index masks of the same name")
    sub.add_argument("--images", type=Path, required=True)
    sub.add_argument("--masks", type=Path, required=True)
    sub.add_argument("--num-classes", type=int, required=True)
    for command in layouts_.choices.values():
        command.add_argument("--out", type=Path, required=True)
        command.add_argument("--validation-fraction", type=float, default=0.1, help="where the source has no split")
        command.add_argument("--seed", type=int, default=0)
        command.add_argument("--jpeg-quality", type=int, default=95, help="for images that are not JPEG already")
        command.add_argument("--workers", type=int, default=os.cpu_count() or 1)
        command.add_argument("--force", action="store_true", help="replace a non-empty OUT")
        command.add_argument("--s3-prefix", help="s3://bucket/prefix: also write the Pipe-mode manifests")
    return top


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    try:
        print(prepare(args))
    except ClientError as exc:
        print(f"semseg-prepare {args.layout}: {exc.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def prepare(args: argparse.Namespace) -> str:
    """The channels in args.out, and the summary to print; ClientError naming every problem (nothing written)."""
    out = args.out.resolve()
    if out.exists() and not out.is_dir():
        raise ClientError(f"--out {out} is a file: give a folder")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ClientError(f"--out {out} is not empty: give --force to replace it, or another folder")
    if not 1 <= args.jpeg_quality <= 100:
        raise ClientError(f"--jpeg-quality {args.jpeg_quality}: give 1 to 100 (95, the default, keeps the detail)")
    drawing = Drawing(args.annotations, args.background) if args.layout == "coco" else None
    plan = _plan(args, drawing)
    samples = _split(plan.samples, args.validation_fraction, args.seed)
    problems = plan.problems + _duplicates(samples) + layouts.empty_splits(samples)
    work = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        for channel in ("train", "train_annotation", "validation", "validation_annotation"):
            (work / channel).mkdir(parents=True)
        counts, found = _convert(samples, Job(plan.rule, work, args.jpeg_quality, drawing), args.workers)
        problems += found
        if problems:
            raise ClientError(f"{len(problems)} problem(s), nothing written:\n" + report(problems))
        if out.exists():
            shutil.rmtree(out)
        work.rename(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tally = {split: sum(1 for s in samples if s.split == split) for split in ("train", "validation")}
    text = summary(out, plan.classes, counts, tally, (args.s3_prefix or PLACEHOLDER).rstrip("/"))
    if args.s3_prefix:
        text += "\n" + pipe_mode_note(write_manifests(out, args.s3_prefix.rstrip("/")))
    return text


def _plan(args: argparse.Namespace, drawing: Drawing | None) -> Plan:
    if args.layout == "voc":
        return layouts.voc(args.root)
    if args.layout == "ade20k":
        return layouts.ade20k(args.root)
    if args.layout == "cityscapes":
        return layouts.cityscapes(args.root)
    if args.layout == "coco":
        assert drawing is not None
        return coco(args.images, drawing)
    if args.layout == "colors":
        return layouts.colors(args.images, args.masks, args.colors, args.ignore_color)
    if not 2 <= args.num_classes <= 254:
        raise ClientError(f"--num-classes {args.num_classes}: the algorithm takes 2 to 254 classes")
    return layouts.folders(args.images, args.masks, args.num_classes)


def _split(samples: list[Sample], fraction: float, seed: int) -> list[Sample]:
    """Samples without a split: a seeded `fraction` of them to validation (at least one), the rest to train."""
    unsplit = [s for s in samples if not s.split]
    if not unsplit:
        return samples
    if not 0 < fraction < 1:
        raise ClientError(f"--validation-fraction {fraction}: give a number between 0 and 1 (the source has no split)")
    order = list(range(len(unsplit)))
    random.Random(seed).shuffle(order)
    chosen = set(order[: max(1, round(fraction * len(unsplit)))]) if len(unsplit) > 1 else set()
    split = [replace(s, split="validation" if i in chosen else "train") for i, s in enumerate(unsplit)]
    return [s for s in samples if s.split] + split


def _duplicates(samples: list[Sample]) -> list[Problem]:
    seen: dict[tuple[str, str], Path] = {}
    problems = []
    for sample in samples:
        key = (sample.split, sample.name)
        if key in seen:
            problems.append(Problem(NAMES, str(sample.image), f"and {seen[key]}"))
        seen[key] = sample.image
    return problems


def _convert(samples: list[Sample], job: Job, workers: int) -> tuple[np.ndarray, list[Problem]]:
    counts = np.zeros(256, np.int64)
    problems: list[Problem] = []
    colours: dict[int, tuple[int, list[str]]] = {}
    for done in convert_all(samples, job, max(1, workers)):
        counts += done.counts
        problems += [p for p in done.problems if p.kind != COLOUR]
        mask = next((p.subject for p in done.problems if p.kind == COLOUR), "")
        for colour, pixels in done.colours.items():
            total, files = colours.get(colour, (0, []))
            colours[colour] = (total + pixels, [*files, mask])
    for colour, (pixels, files) in sorted(colours.items(), key=lambda item: -item[1][0]):
        rgb = f"({colour >> 16},{(colour >> 8) & 255},{colour & 255})"
        first = ", ".join(sorted(files)[:3])
        problems.append(Problem(COLOUR, rgb, f"{pixels} px in {len(files)} mask(s), first {first}"))
    return counts, problems


def _rgb(text: str) -> tuple[int, int, int]:
    try:
        r, g, b = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give R,G,B, e.g. 0,0,0") from None
    if not all(0 <= v <= 255 for v in (r, g, b)):
        raise argparse.ArgumentTypeError(f"{text!r}: each of R,G,B is 0..255")
    return r, g, b


def run() -> None:
    """The console script."""
    sys.exit(main(sys.argv[1:]))
