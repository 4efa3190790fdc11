"""`make bench` / `python -m benchmarks [--quick] [NAME ...]`: every benchmark, tables on stdout, JSON in
benchmarks/out/. NAME: input_pipeline, pipe_mode, pipe_processes (Pipe mode fed to several torch processes),
validation, several_hosts, overhead, train_step, serving, memory, imbalanced (class weights and test-time
augmentation), thin_classes (DeepLabV3+ against DeepLabV3 and FCN), outputs (TensorBoard and pictures),
gpu_torch (the PyTorch engine on a GPU; `gpu` is its old name), gpu_mxnet, gpu_pipe (Pipe mode on the torch
engine; all three skipped without a GPU), prepare_coco (semseg-prepare coco on every core against a plain
pycocotools loop), dinov2 (DINOv2's step, memory and export against DeepLabV3-R50).

The benchmark modules are imported after the OpenMP thread count is set as the `train` entry point sets it
(semseg.threads), so in-process comparisons run ours and the reference with the job's settings alike.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import tempfile
from pathlib import Path

from semseg.threads import configure_openmp

NAMES = (
    "input_pipeline",
    "pipe_mode",
    "pipe_processes",
    "validation",
    "overhead",
    "several_hosts",
    "train_step",
    "serving",
    "memory",
    "imbalanced",
    "thin_classes",
    "outputs",
    "gpu_torch",
    "gpu_mxnet",
    "gpu_pipe",
    "prepare_coco",
    "dinov2",
)

ALIASES = {"gpu": "gpu_torch"}  # the name before the MXNet GPU benchmark had one of its own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", default=list(NAMES), help=f"any of {', '.join(NAMES)}")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and images (noisier)")
    args = parser.parse_args()
    args.names = [ALIASES.get(name, name) for name in args.names]
    unknown = [name for name in args.names if name not in NAMES]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    logging.basicConfig(level=logging.WARNING)
    configure_openmp(os.environ)
    work = Path(tempfile.mkdtemp(prefix="semseg-bench-"))
    for name in args.names:
        module = importlib.import_module(f"benchmarks.{name}")
        if name in ("input_pipeline", "pipe_mode", "pipe_processes", "overhead", "several_hosts"):
            module.main(work, args.quick)
        else:
            module.main(args.quick)


if __name__ == "__main__":
    main()
