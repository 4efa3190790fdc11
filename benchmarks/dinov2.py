"""DINOv2 beside DeepLabV3-R50 (the torch engine's networks, random weights: the real ones cannot be fetched here):

- one training step (forward, loss, backward, the engine's optimizer) of a batch of two 224x224 images, in turn;
- the training memory per pixel of a batch of two 448x448 images, each network in a fresh process (peak resident
  memory above the process's memory before the step, as benchmarks/memory.py measures MXNet's);
- serving: images/s of each network's FP32 ONNX export (semseg.export.graph) on the export's CPU runtime, 480x360
  images, one at a time.

DINOv2 runs fine-tuned (backbone_lr_multiplier=1) and frozen (0, its default). Ratios are against DeepLabV3-R50.

    python -m benchmarks dinov2 [--quick]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import alternate, median, rate, save, table
from semseg.contract.config import Config
from semseg.engines.torch.convert import to_gluon
from semseg.engines.torch.nets import build_network, trainable
from semseg.engines.torch.optim import trainer_for
from semseg.export import runtime
from semseg.export.graph import build

NETWORKS = {  # name -> (algorithm, backbone, backbone_lr_multiplier)
    "DeepLabV3-R50": ("deeplab", "resnet-50", 1.0),
    "DINOv2-S linear, fine-tuned": ("linear", "dinov2-small", 1.0),
    "DINOv2-S linear, frozen": ("linear", "dinov2-small", 0.0),
    "DINOv2-B linear, frozen": ("linear", "dinov2-base", 0.0),
}
CLASSES = 21


def config(name: str) -> Config:
    algorithm, backbone, mult = NETWORKS[name]
    return Config(num_classes=CLASSES, num_training_samples=100, algorithm=algorithm, backbone=backbone,
                  backbone_lr_multiplier=mult)  # fmt: skip


def stepper(name: str, size: int) -> Any:
    """A function that runs one training step of `name` and returns the images it trained on."""
    cfg = config(name)
    net = trainable(build_network(cfg), cfg).train()
    optimizer = trainer_for(net, cfg)
    images = torch.randn(2, 3, size, size)
    labels = torch.randint(0, CLASSES, (2, size, size))

    def step() -> int:
        loss = sum(F.cross_entropy(out, labels) for out in net(images))
        optimizer.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimizer.step()
        return 2

    step()  # warm-up
    return step


MEMORY = """
import json, re, sys
from pathlib import Path
from benchmarks.dinov2 import stepper

def peak_kb():  # VmHWM: this process image's own peak (getrusage's ru_maxrss keeps the parent's across exec)
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1))

name, size = sys.argv[1], int(sys.argv[2])
before = peak_kb()
stepper(name, size)
print(json.dumps({"bytes_per_pixel": (peak_kb() - before) * 1024 / (2 * size * size)}))
"""


def memory_per_pixel(name: str, size: int) -> float:
    """Peak memory of building `name` and one training step above the process's peak before, in a fresh process
    (which imports torch and the network's modules only)."""
    done = subprocess.run([sys.executable, "-c", MEMORY, name, str(size)], capture_output=True, text=True, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["bytes_per_pixel"])


def server(name: str) -> Any:
    cfg = config(name)
    net = build_network(cfg, aux=False).eval()
    on = next(r for r in runtime.RUNTIMES if runtime.available(r))
    path = Path(tempfile.mkdtemp(prefix="semseg-bench-dinov2-")) / f"{cfg.algorithm}-{cfg.backbone}.onnx"
    path.write_bytes(build(cfg, to_gluon(net)).SerializeToString())
    score = runtime.scorer(path, on)
    image = np.random.default_rng(0).integers(0, 256, (360, 480, 3), dtype=np.uint8)
    score(image)  # compiles for this size

    def one() -> int:
        score(image)
        return 1

    return one


def main(quick: bool = False) -> None:
    rounds = 2 if quick else 5
    steps = alternate({name: (lambda f: lambda: rate(f))(stepper(name, 224)) for name in NETWORKS}, rounds)
    serving = alternate({name: (lambda f: lambda: rate(f))(server(name)) for name in NETWORKS}, rounds)
    memory = {name: memory_per_pixel(name, 448) for name in NETWORKS}
    reference = "DeepLabV3-R50"
    rows = []
    for name in NETWORKS:
        step_s = 1 / median(steps[name])
        rows.append([name, step_s, (1 / median(steps[reference])) / step_s, memory[name],
                     memory[reference] / memory[name], median(serving[name]),
                     median(serving[name]) / median(serving[reference])])  # fmt: skip
    header = ["network", "step s (2x224)", "x faster", "train B/px (448)", "x less", "FP32 export img/s", "x"]
    print(table(f"DINOv2 beside DeepLabV3-R50, torch engine, {rounds} rounds", header, rows))
    save("dinov2", {"rows": [dict(zip(header, row)) for row in rows]})


if __name__ == "__main__":
    main("--quick" in sys.argv)
