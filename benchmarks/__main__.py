"""`make bench` / `python -m benchmarks [--quick] [NAME ...]`: every benchmark, tables on stdout, JSON in
benchmarks/out/. NAME: train_step, input_pipeline, validation, overhead."""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from benchmarks import input_pipeline, overhead, train_step, validation


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=["input_pipeline", "validation", "overhead", "train_step"])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and images (noisier)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="semseg-bench-"))
    for name in args.names:
        if name == "input_pipeline":
            input_pipeline.main(work, args.quick)
        elif name == "validation":
            validation.main(args.quick)
        elif name == "overhead":
            overhead.main(work, args.quick)
        elif name == "train_step":
            train_step.main(args.quick)
        else:
            parser.error(f"unknown benchmark {name!r}")


if __name__ == "__main__":
    main()
