"""Pipe mode on the GPU: the PyTorch engine's whole training loop fed from a FIFO against the same loop fed
from files, same images (VOC-like 512 px JPEGs and PNG masks), fcn resnet-50, crop 240, bf16, batch 16, the
configuration where the GPU asks most of the input. Epochs alternate between the two; images/s of each
epoch after a warm-up one. Goal (issue 12): Pipe >= File. Imports no MXNet; skipped without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import median, save, table
from benchmarks.fifo_writer import Writer
from benchmarks.gpu_torch import BATCH, IMAGE_SIDE, IMAGES
from semseg.contract.config import Config
from semseg.contract.job import JobPaths, load_job
from semseg.data.pipeline import build_loaders
from semseg.data.recordio import frame
from semseg.engines.torch.devices import configure_cuda
from semseg.engines.torch.loader import Loader
from semseg.engines.torch.loop import Loop
from semseg.engines.torch.network import SegmentationNet
from semseg.engines.torch.optim import trainer_for
from semseg.example import make_job
from semseg.fit.loop import LoopSettings, NoHooks

CROP = 240


def _pipe_copy(base: Path, target: Path) -> list[bytes]:
    """The job with its train split as a Pipe-mode channel; returns the stream's records."""
    shutil.copytree(base, target)
    data = target / "input" / "data"
    records = []
    for image in sorted((data / "train").iterdir()):
        records.append(
            frame(image.read_bytes()) + frame((data / "train_annotation" / f"{image.stem}.png").read_bytes())
        )
    shutil.rmtree(data / "train")
    shutil.rmtree(data / "train_annotation")
    config_file = target / "input" / "config" / "inputdataconfig.json"
    config = json.loads(config_file.read_text())
    config["train"] = {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO"}
    config.pop("train_annotation")
    config_file.write_text(json.dumps(config))
    return records


def main(quick: bool = False, device: torch.device | None = None, rounds: int | None = None) -> dict[str, Any]:
    title = f"Pipe mode on the GPU: the torch engine's loop, fcn resnet-50, crop {CROP}, batch {BATCH} (images/s)"
    device = device or (torch.device("cuda", 0) if torch.cuda.is_available() else None)
    if device is None:
        print(f"{title}\nskipped: PyTorch sees no GPU here\n")
        save("gpu_pipe", {"skipped": "no GPU"})
        return {}
    rounds = rounds or (2 if quick else 3)
    work = Path(tempfile.mkdtemp(prefix="semseg-gpu-pipe-"))
    file_base = make_job(work / "file", images=IMAGES, size=max(IMAGE_SIDE, CROP))
    pipe_base = work / "pipe"
    records = _pipe_copy(file_base, pipe_base)
    Writer(pipe_base / "input" / "data", rounds + 1, lambda: records).start()
    on_gpu = device.type == "cuda"
    config = Config.from_hyperparameters(
        {
            "algorithm": "fcn",
            "crop_size": str(CROP),
            "mini_batch_size": str(BATCH),
            "num_classes": "21",
            "num_training_samples": str(IMAGES),
            "use_pretrained_model": "False",
            "precision_dtype": "float16" if on_gpu else "float32",
            "learning_rate": "0.001",
            "epochs": "50",
        }
    )
    if on_gpu:
        configure_cuda(device)
    workers = min(16, os.cpu_count() or 1) if on_gpu else 0
    loaders = {
        mode: build_loaders(load_job(JobPaths(base)), config, 0, Loader(workers, pin=on_gpu))[0]
        for mode, base in (("file", file_base), ("pipe", pipe_base))
    }
    net = SegmentationNet("fcn", config.backbone, config.num_classes).to(device)
    if on_gpu:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    loop = Loop(net, trainer_for(net, config), device, LoopSettings.of(config))
    rates: dict[str, list[float]] = {"file": [], "pipe": []}
    for epoch in range(rounds + 1):  # epoch 0 warms up (cuDNN autotuning, workers starting)
        for mode, loader in loaders.items():
            loader.set_epoch(epoch)
            done = loop.train_epoch(loader, epoch, NoHooks(), 10**9)
            assert done is not None
            if epoch:
                rates[mode].append(done[1])
    file_rate, pipe_rate = median(rates["file"]), median(rates["pipe"])
    name = torch.cuda.get_device_name(device) if on_gpu else "CPU"
    described = f"{name}; torch {torch.__version__}, {os.cpu_count()} CPU cores, {workers} loader workers"
    print(table(title, ["file", "pipe", "ratio"], [[file_rate, pipe_rate, pipe_rate / file_rate]]))
    print(f"device: {described}")
    print(f"goal: pipe >= file -> {pipe_rate / file_rate:.2f}x {'met' if pipe_rate >= file_rate else 'MISSED'}\n")
    result = {"device": described, "file": file_rate, "pipe": pipe_rate, "ratio": pipe_rate / file_rate, "runs": rates}
    save("gpu_pipe", result)
    shutil.rmtree(work, ignore_errors=True)
    return result
