"""Several hosts: the cost of the exchange between hosts on both engines (MXNet's parameter server, torch.
distributed's all-reduce), and what each exchanges per step.

Measured, per engine: the same job (FCN ResNet-50, 24 training images, crop 96, global batch 4, 3 epochs) on
one host (one process, 2 threads) and on two hosts (two processes on this machine's loopback, 1 thread each,
each training half of every batch). They share the same 2 cores, so no speed-up is possible: the ratio of
total images/s (epochs after the first) is what the exchange of gradients costs on top of the compute.

Computed: the bytes each host sends (and receives) per step for every network, from its trainable
parameters (4 bytes of gradient each). Parameter server: a worker pushes its gradients to the servers and
pulls their sum; with N hosts, (N-1)/N of that crosses the network, and the host's server receives and sends
the same share for the other workers: 2 x gradients x (N-1)/N per direction. Ring all-reduce (DDP over gloo
or NCCL): a reduce-scatter and an all-gather, each sending (N-1)/N of the gradients: the same 2 x gradients
x (N-1)/N per direction. Divided by an instance's network bandwidth, that is the exchange's time per step.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import mxnet as mx

from benchmarks.common import save, table
from semseg.contract.config import Config
from semseg.engines.mxnet.network import build_model, materialize
from semseg.example import make_job

HOSTS = ["127.0.0.1", "127.0.0.2"]
HP = {"epochs": 3, "mini_batch_size": 4, "validation_mini_batch_size": 4, "crop_size": 96}
BANDWIDTH_GBPS = {
    "25 Gbit/s (ml.p3.16xlarge, ml.g5.12xlarge)": 25,
    "100 Gbit/s (ml.p3dn.24xlarge, ml.g5.48xlarge)": 100,
    "400 Gbit/s (ml.p4d.24xlarge, EFA)": 400,
    "3200 Gbit/s (ml.p5.48xlarge, EFA)": 3200,
}


ENGINES = ("mxnet", "torch")


def _job(work: Path, name: str, images: int, hosts: list[str]) -> list[Path]:
    bases = []
    for host in hosts:
        base = make_job(work / name / host, images=images, size=96, hyperparameters=HP)
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "lo"}
        (base / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resources))
        bases.append(base)
    return bases


def _run(bases: list[Path], threads: int, port: int, engine: str) -> float:
    """Total training images/s over the epochs after the first: summed over the hosts on MXNet (each logs its
    own), the first host's on torch (each logs that of all processes)."""
    procs = []
    for base in bases:
        env = {
            **os.environ,
            "SAGEMAKER_BASE_DIR": str(base),
            "OMP_NUM_THREADS": str(threads),
            "SEMSEG_PS_PORT": str(port),
            "SEMSEG_MASTER_PORT": str(port),
            "SEMSEG_ENGINE": engine,
            "PYTHONUNBUFFERED": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "semseg", "train"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    logs = [proc.communicate(timeout=3600)[0].decode() for proc in procs]
    if any(proc.returncode for proc in procs):
        raise RuntimeError("a benchmark job failed:\n" + "\n".join(log[-2000:] for log in logs))
    per_host = [[float(v) for v in re.findall(r"train throughput: (\S+) samples/sec", log)][1:] for log in logs]
    if engine == "torch":
        return statistics.mean(per_host[0])
    return sum(statistics.mean(rates) for rates in per_host)


def exchange_bytes() -> list[dict[str, Any]]:
    rows = []
    for algorithm in ("fcn", "psp", "deeplab"):
        for backbone in ("resnet-50", "resnet-101"):
            config = Config.from_hyperparameters(
                {
                    "num_classes": "21",
                    "num_training_samples": "1464",
                    "crop_size": "96",
                    "algorithm": algorithm,
                    "backbone": backbone,
                    "use_pretrained_model": "False",
                }
            )
            net = build_model(config, [mx.cpu()])
            materialize(net, [mx.cpu()], 96)
            params = sum(p.data().size for p in net.collect_params().values() if p.grad_req != "null")
            rows.append({"network": f"{algorithm} {backbone}", "parameters": params, "gradient_mb": params * 4 / 1e6})
    return rows


def main(work: Path, quick: bool = False) -> dict[str, Any]:
    images = 12 if quick else 24
    measured = {}
    for number, engine in enumerate(ENGINES):
        port = 9600 + 40 * number
        one = _run(_job(work, f"{engine}-one-host", images, HOSTS[:1]), threads=2, port=port, engine=engine)
        two = _run(_job(work, f"{engine}-two-hosts", images, HOSTS), threads=1, port=port + 20, engine=engine)
        measured[engine] = {"one_host": one, "two_hosts": two, "ratio": two / one}
    print(
        table(
            "Several hosts: 2 hosts against 1 on the same work, sharing this machine's cores (images/s)",
            ["engine", "1 host", "2 hosts", "ratio"],
            [[engine, m["one_host"], m["two_hosts"], m["ratio"]] for engine, m in measured.items()],
        )
    )
    rows = exchange_bytes()
    for row in rows:
        for name, gbps in BANDWIDTH_GBPS.items():
            # per host and direction: 2 x gradients x (N-1)/N, the parameter server's and the ring's alike
            hosts = len(HOSTS)
            row[name] = 2 * row["gradient_mb"] * 1e6 * (hosts - 1) / hosts * 8 / (gbps * 1e9) * 1000
    print(
        table(
            "Bytes per step and host (2 hosts), either engine: gradients out and sums back; ms of the network per step",
            ["network", "parameters", "gradients MB", *BANDWIDTH_GBPS],
            [[r["network"], r["parameters"], r["gradient_mb"], *(r[n] for n in BANDWIDTH_GBPS)] for r in rows],
        )
    )
    result = {**measured["mxnet"], "engines": measured, "exchange": rows}
    save("several_hosts", result)
    return result
