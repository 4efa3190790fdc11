"""Training throughput: our training step vs a plain GluonCV loop, same model, crop, batch and device.

Reference, the way GluonCV's scripts/segmentation/train.py trains: imperative network,
gluoncv.loss.MixSoftmaxCrossEntropyLoss, gluon.Trainer, float32 ImageNet-normalised batches made on the
host, the loss read back every iteration, and MXNet's default settings. Ours: semseg.engines.mxnet.loop.Loop
(hybridized with static allocation, hybridized loss, uint8 batches normalised on the device, no
per-iteration host sync) in the environment the `train` entry point sets up (semseg.threads).

Each variant runs in a worker process of its own (the OpenMP thread count is fixed when MXNet loads);
the workers build and warm up once, then the parent asks them for timed passes in turn (A B C A B C ...).
A third variant, the reference loop with our thread setting, separates the loop's own gain from the
setting's. A fourth, the PyTorch engine (SEMSEG_ENGINE=torch: semseg.engines.torch.loop.Loop, same
thread setting as ours), puts the two engines side by side on the same machine in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.common import median, save, table
from semseg.threads import configure_openmp

VARIANTS = ("ours", "reference", "reference_our_threads", "torch")
COLUMNS = (
    "algorithm", "ours", "reference", "ratio", "reference_our_threads", "ratio_same_threads", "torch", "torch_vs_ours"
)  # fmt: skip


def variant_env(variant: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if variant != "reference":  # the reference runs with MXNet's defaults
        configure_openmp(env)
    return env


class Worker:
    """A process that trains one variant; each `timed_pass()` returns its images/s."""

    def __init__(
        self,
        variant: str,
        algorithm: str,
        crop: int,
        batch: int,
        iterations: int,
        device: str = "cpu",
        precision: str = "float32",
    ) -> None:
        args = [variant, algorithm, str(crop), str(batch), str(iterations), device, precision]
        command = [sys.executable, "-m", "benchmarks.train_step_worker", *args]
        if variant == "torch":  # the PyTorch engine, CPU only here (benchmarks/gpu_torch.py measures it on GPUs)
            command = [sys.executable, "-m", "benchmarks.train_step_torch_worker", *args[1:5]]
        self.proc = subprocess.Popen(
            command,
            env=variant_env(variant),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.threads = self._read()["threads"]  # after build and warm-up

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.proc.wait()}")
        return dict(json.loads(line))

    def timed_pass(self) -> float:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return float(self._read()["rate"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def measure(algorithm: str, crop: int, batch: int, iterations: int, rounds: int) -> dict[str, Any]:
    workers: dict[str, Worker] = {}
    try:
        for variant in VARIANTS:  # one at a time: the warm-ups would otherwise compete
            workers[variant] = Worker(variant, algorithm, crop, batch, iterations)
        runs: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(rounds):
            for variant, worker in workers.items():
                runs[variant].append(worker.timed_pass())
    finally:
        for worker in workers.values():
            worker.close()
    rates = {variant: median(values) for variant, values in runs.items()}
    return {
        "algorithm": algorithm,
        "crop": crop,
        "batch": batch,
        **rates,
        "ratio": rates["ours"] / rates["reference"],
        "ratio_same_threads": rates["ours"] / rates["reference_our_threads"],
        "torch_vs_ours": rates["torch"] / rates["ours"],
        "threads": {variant: worker.threads for variant, worker in workers.items()},
        "runs": runs,
    }


def main(quick: bool = False) -> list[dict[str, Any]]:
    results = [
        measure(algorithm, 240, batch=4, iterations=2 if quick else 4, rounds=2 if quick else 3)
        for algorithm in ("fcn", "psp", "deeplab", "deeplabv3plus")
    ]
    threads = results[0]["threads"]  # the same for every algorithm
    print(
        table(
            "Training throughput (images/s), ours vs plain GluonCV loop, resnet-50, batch 4, crop 240 "
            f"(OpenMP threads: ours {threads['ours']}, reference: {threads['reference']}, half the CPUs on x86)",
            [
                "algorithm",
                "ours",
                "reference",
                "ratio",
                "reference, our threads",
                "ratio, same threads",
                "torch engine",
                "torch/ours",
            ],
            [[r[key] for key in COLUMNS] for r in results],
        )
    )
    fcn = next(r for r in results if r["algorithm"] == "fcn")
    print(
        f"goal: fcn at crop 240 >= 1.15x -> {fcn['ratio']:.2f}x {'met' if fcn['ratio'] >= 1.15 else 'MISSED'} "
        f"(the loop alone, same threads: {fcn['ratio_same_threads']:.2f}x)\n"
    )
    save("train_step", {"results": results, "goal": 1.15})
    return results


if __name__ == "__main__":
    main()
