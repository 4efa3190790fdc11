"""GPU training throughput of the PyTorch engine (SEMSEG_ENGINE=torch): fcn/psp/deeplab/deeplabv3plus resnet-50,
crop 240 and 480, float32 (TF32) and bf16 autocast (`precision_dtype=float16`), batch 16, on GPU 0.

Two figures per configuration, in the same run: our whole loop (semseg.engines.torch.loop.Loop.train_epoch over the
real data pipeline: JPEG/PNG files decoded, augmented and batched by DataLoader workers, normalised on the GPU) and
the bare step (semseg.engines.torch.loop.Loop.step on one batch already on the GPU). Goal (issue 14): fcn crop 240
bf16 >= 600 images/s (11x the managed algorithm's ~55 on a V100), the loop within 10% of the bare step. Skipped,
saying so, where PyTorch sees no GPU. Imports no MXNet, so it runs where only torch, numpy, OpenCV and Pillow are."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import median, save, table
from semseg.contract.config import Config
from semseg.contract.job import JobPaths, load_job
from semseg.data.pipeline import build_loaders
from semseg.engines.torch.devices import configure_cuda
from semseg.engines.torch.loader import Loader
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.optim import trainer_for
from semseg.example import make_job
from semseg.fit.loop import LoopSettings, NoHooks

MANAGED_V100 = 55.0  # samples/s, crop 240, batch 16: the managed algorithm's published training log
TARGET = 600.0  # fcn crop 240 bf16, images/s on one H100/H200
BATCH = 16
IMAGES = int(os.environ.get("SEMSEG_BENCH_GPU_IMAGES", "960"))  # 60 iterations per epoch: the epoch start is amortised
IMAGE_SIDE = 512


def measure(
    base: Path, algorithm: str, crop: int, precision: str, device: torch.device, epochs: int, steps: int
) -> dict[str, Any]:
    config = Config.from_hyperparameters(
        {
            "algorithm": algorithm,
            "crop_size": str(crop),
            "mini_batch_size": str(BATCH),
            "num_classes": "21",
            "num_training_samples": str(IMAGES),
            "use_pretrained_model": "False",
            "precision_dtype": "float16" if precision == "bf16" else "float32",
            "optimizer": "sgd",
            "learning_rate": "0.001",
            "epochs": "50",
        }
    )
    on_gpu = device.type == "cuda"
    if on_gpu:
        configure_cuda(device)
    workers = min(16, os.cpu_count() or 1) if on_gpu else 0
    train, _ = build_loaders(load_job(JobPaths(base)), config, 0, Loader(workers, pin=on_gpu))
    net = SegmentationNet(algorithm, config.backbone, config.num_classes).to(device)
    if on_gpu:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loop = Loop(net, trainer_for(net, config), device, LoopSettings.of(config))
    hooks = NoHooks()
    train.set_epoch(0)
    loop.train_epoch(train, 0, hooks, 10**9)  # warm-up: cuDNN autotuning, loader workers starting
    loop_rates = []
    for epoch in range(1, epochs + 1):
        train.set_epoch(epoch)
        done = loop.train_epoch(train, epoch, hooks, 10**9)
        assert done is not None
        loop_rates.append(done[1])
    images, masks = next(iter(train))
    images, masks = images.to(device), masks.to(device)
    loop.step(images, masks)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step(images, masks)
    _sync(device)
    bare = steps * images.shape[0] / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if on_gpu else 0.0
    if on_gpu:
        torch.cuda.reset_peak_memory_stats(device)
    ours = median(loop_rates)
    return {
        "algorithm": algorithm,
        "crop": crop,
        "precision": precision,
        "loop_images_per_s": ours,
        "bare_step_images_per_s": bare,
        "loop_vs_bare": ours / bare,
        "peak_gib": peak,
        "loop_runs": loop_rates,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(quick: bool = False, device: torch.device | None = None, crops: tuple[int, ...] = (240, 480)) -> list[dict]:
    title = f"PyTorch engine, GPU training throughput (images/s), resnet-50, batch {BATCH}, one GPU"
    device = device or (torch.device("cuda", 0) if torch.cuda.is_available() else None)
    if device is None:
        print(f"{title}\nskipped: PyTorch sees no GPU here\n")
        save("gpu", {"skipped": "no GPU"})
        return []
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    base = make_job(Path(tempfile.mkdtemp(prefix="semseg-gpu-bench-")), images=IMAGES, size=max(IMAGE_SIDE, *crops))
    results = []
    for algorithm in ("fcn", "psp", "deeplab", "deeplabv3plus"):
        for crop in crops:
            for precision in ("float32", "bf16"):
                try:
                    results.append(
                        measure(base, algorithm, crop, precision, device, 2 if quick else 3, 10 if quick else 30)
                    )
                except Exception as exc:  # noqa: BLE001  # one failing configuration must not hide the others
                    print(f"{algorithm} crop {crop} {precision}: failed: {type(exc).__name__}: {exc}", flush=True)
                    continue
                print(results[-1], flush=True)
    rows = [
        [
            r["algorithm"],
            r["crop"],
            r["precision"],
            r["loop_images_per_s"],
            r["bare_step_images_per_s"],
            r["loop_vs_bare"],
        ]
        for r in results
    ]
    described = f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}, {os.cpu_count()} CPU cores"
    print(table(title, ["algorithm", "crop", "precision", "our loop", "bare step", "loop/bare"], rows))
    print(f"device: {described}")
    fcn = [r for r in results if r["algorithm"] == "fcn" and r["crop"] == min(crops) and r["precision"] == "bf16"]
    if fcn:
        print(
            f"goal: fcn crop 240 bf16 >= {TARGET:.0f} images/s ({TARGET / MANAGED_V100:.0f}x the managed algorithm "
            f"on a V100) -> {fcn[0]['loop_images_per_s']:.0f}, loop/bare {fcn[0]['loop_vs_bare']:.2f}\n"
        )
    save("gpu", {"device": described, "results": results, "target": TARGET})
    return results
