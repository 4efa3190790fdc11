"""`semseg-weights`, the weight store's command (in every image; the images' build runs `fetch`):

    semseg-weights fetch [--backbone B ...] [--engine mxnet|torch] [--store DIR] [--timeout S]
                         [--sources gluoncv,huggingface,authors,url] [--sha256 B=HEX ...]
    semseg-weights import FILE [--backbone B] [--store DIR]
    semseg-weights list [--store DIR]
    semseg-weights none [--store DIR]          (what an image built with PREFETCH_WEIGHTS=0 records)

The store is $MXNET_HOME/models unless --store says otherwise: where `use_pretrained_model=True` looks, for both
engines. Environment: SEMSEG_WEIGHTS_URL (the `url` source), SEMSEG_WEIGHTS_SHA256 (B=HEX,...: the SHA-256 each
fetched file must have), MXNET_GLUON_REPO (GluonCV's store), HF_ENDPOINT (the Hub), SEMSEG_DINOV2_URL (the DINOv2
authors' files). Without --backbone, fetch takes every backbone the engine trains (SEMSEG_ENGINE, or --engine):
the ResNets for MXNet, and the DINOv2 ViTs too for PyTorch. Exit codes: 0 done, 2 a
failure (every source named with why it failed, or the file's problem), nothing half-written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from semseg.contract.config import BACKBONES, ENGINE_BACKBONES
from semseg.contract.options import ENGINE_NAMES, setting
from semseg.engines.weights import Backbone, read_manifest
from semseg.store.arrays import WeightsError
from semseg.store.shelf import FetchError, fetch, import_file, mark_empty
from semseg.store.sources import NAMES, BuilderURL, DINOv2Authors, GluonCVStore, HuggingFaceHub, Source

log = logging.getLogger("semseg.store")
EXIT_FAILED = 2


def parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    store = Path(setting(environ, "MXNET_HOME")).expanduser() / "models"
    backbones = list(BACKBONES)
    top = argparse.ArgumentParser(prog="semseg-weights", description="The ImageNet weights of the backbones.")
    commands = top.add_subparsers(dest="command", required=True)
    get = commands.add_parser("fetch", help="fetch from the first source that gives the right file")
    get.add_argument("--backbone", action="append", choices=backbones, help="default: every one the engine trains")
    get.add_argument(
        "--engine",
        choices=ENGINE_NAMES,
        default=setting(environ, "SEMSEG_ENGINE"),
        help="whose backbones to fetch without --backbone (default: SEMSEG_ENGINE's)",
    )
    get.add_argument("--sources", default=",".join(NAMES), help=f"in order, of {', '.join(NAMES)}")
    get.add_argument("--timeout", type=float, default=60.0, help="seconds a source may be silent (default 60)")
    get.add_argument("--sha256", action="append", default=[], metavar="B=HEX", help="the SHA-256 of B's file")
    bring = commands.add_parser(
        "import", help="a file you bring: GluonCV .params, .safetensors (timm's, the Hub's) or .pth"
    )
    bring.add_argument("file", type=Path)
    bring.add_argument("--backbone", choices=backbones, help="checked against the file's (read from it)")
    commands.add_parser("list", help="what the store holds and where it came from")
    commands.add_parser("none", help="record that the image is built without weights")
    for command in commands.choices.values():
        command.add_argument("--store", type=Path, default=store, help=f"default: {store}")
    return top


def main(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    args = parser(environ).parse_args(list(argv))
    try:
        if args.command == "fetch":
            hashes = _hashes([*filter(None, setting(environ, "SEMSEG_WEIGHTS_SHA256").split(",")), *args.sha256])
            sources = _sources(args.sources, environ)
            for name in args.backbone or ENGINE_BACKBONES[args.engine]:
                fetch(Backbone(name), args.store, sources, args.timeout, hashes.get(name))
        elif args.command == "import":
            import_file(args.file, args.backbone, args.store)
        elif args.command == "none":
            mark_empty(args.store)
        _list(args.store)
    except (FetchError, WeightsError, ValueError) as exc:
        print(f"semseg-weights {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _sources(names: str, environ: Mapping[str, str]) -> list[Source]:
    known: dict[str, Source] = {
        "gluoncv": GluonCVStore(setting(environ, "MXNET_GLUON_REPO")),
        "huggingface": HuggingFaceHub(setting(environ, "HF_ENDPOINT")),
        "authors": DINOv2Authors(setting(environ, "SEMSEG_DINOV2_URL")),
        "url": BuilderURL(setting(environ, "SEMSEG_WEIGHTS_URL")),
    }
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise ValueError(f"--sources {names!r}: each must be one of {', '.join(NAMES)}")
    return [known[name] for name in chosen]


def _hashes(pairs: Sequence[str]) -> dict[str, str]:
    found = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name.strip() not in BACKBONES or len(value.strip()) != 64:
            raise ValueError(f"SHA-256 {pair!r}: give BACKBONE=HEX with a backbone of {', '.join(BACKBONES)}")
        found[name.strip()] = value.strip()
    return found


def _list(store: Path) -> None:
    manifest = read_manifest(store) or {}
    files = manifest.get("files") or {}
    if not files:
        print(f"{store}: no pretrained weights" + (" (built without them)" if manifest else ""))
    for name, entry in sorted(files.items()) if isinstance(files, dict) else []:
        print(f"{store / name}: {entry.get('backbone')} from {entry.get('source')} ({entry.get('address')})")


def run() -> None:
    """The console script."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    sys.exit(main(sys.argv[1:], os.environ))


if __name__ == "__main__":
    run()
