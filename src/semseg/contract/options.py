"""Settings of a run that are not hyperparameters: from the environment, with documented defaults.

Read once at the start of `train` (the README's settings table lists them); nothing deeper reads the
environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from semseg.contract.errors import ClientError
from semseg.contract.params import parse_bool
from semseg.data.fifo import DEFAULT_SHUFFLE_BUFFER, DEFAULT_TIMEOUT_S, PipeSettings
from semseg.distributed.peers import DEFAULT_TIMEOUT_S as PEER_TIMEOUT_S
from semseg.fit.sliding import DEFAULT_PIXEL_BUDGET

MAX_DATA_WORKERS = 16  # the managed algorithm's
DEFAULT_PS_PORT = 8000  # the scheduler's, as in SageMaker's MXNet container; peers are watched on the next ports
DEFAULT_MASTER_PORT = 7777  # torch.distributed's rendezvous, as SageMaker's PyTorch containers; peers: the next ones
ENGINES = ("mxnet", "torch")
T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    weights_root: Path  # GluonCV's weight store: $MXNET_HOME/models, else ~/.mxnet/models
    seed: int = 0  # SEMSEG_SEED
    data_workers: int | None = None  # SEMSEG_DATA_WORKERS; None: 0 on the CPU, else min(16, CPU cores)
    progress_every: int = 20  # SEMSEG_PROGRESS_EVERY: iterations between progress lines
    cpu_devices: int = 0  # SEMSEG_CPU_DEVICES=N: train data-parallel on N CPU contexts (tests, benchmarks)
    allow_cpu: bool = False  # SEMSEG_ALLOW_CPU=true: train on the CPU where GPUs are present but unusable
    engine: str = "mxnet"  # SEMSEG_ENGINE: mxnet, or torch (the Hopper image's default)
    pixel_budget: int = DEFAULT_PIXEL_BUDGET  # SEMSEG_PIXEL_BUDGET: larger validation images go by windows
    pipe_timeout_s: float = DEFAULT_TIMEOUT_S  # SEMSEG_PIPE_TIMEOUT: wait for a Pipe-mode FIFO and its data
    pipe_shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER  # SEMSEG_PIPE_SHUFFLE_BUFFER: pairs shuffled in memory
    ps_port: int = DEFAULT_PS_PORT  # SEMSEG_PS_PORT: several hosts: the scheduler's port; + 1 + rank: peer watch
    master_port: int = DEFAULT_MASTER_PORT  # SEMSEG_MASTER_PORT: torch, several hosts: the rendezvous; + 1 + rank
    peer_timeout_s: float = PEER_TIMEOUT_S  # SEMSEG_PEER_TIMEOUT: a host silent this long has failed

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunOptions:
        home = environ.get("MXNET_HOME") or "~/.mxnet"
        workers = environ.get("SEMSEG_DATA_WORKERS")
        return cls(
            seed=env_int(environ, "SEMSEG_SEED", 0),
            data_workers=None if workers is None else env_int(environ, "SEMSEG_DATA_WORKERS", 0),
            weights_root=Path(home).expanduser() / "models",
            progress_every=max(1, env_int(environ, "SEMSEG_PROGRESS_EVERY", 20)),
            cpu_devices=max(0, env_int(environ, "SEMSEG_CPU_DEVICES", 0)),
            allow_cpu=_env_bool(environ, "SEMSEG_ALLOW_CPU"),
            engine=engine_from(environ),
            pixel_budget=max(1, env_int(environ, "SEMSEG_PIXEL_BUDGET", DEFAULT_PIXEL_BUDGET)),
            pipe_timeout_s=max(1.0, _env(environ, "SEMSEG_PIPE_TIMEOUT", float, DEFAULT_TIMEOUT_S, "a number")),
            pipe_shuffle_buffer=max(0, env_int(environ, "SEMSEG_PIPE_SHUFFLE_BUFFER", DEFAULT_SHUFFLE_BUFFER)),
            ps_port=env_int(environ, "SEMSEG_PS_PORT", DEFAULT_PS_PORT),
            master_port=env_int(environ, "SEMSEG_MASTER_PORT", DEFAULT_MASTER_PORT),
            peer_timeout_s=max(2.0, _env(environ, "SEMSEG_PEER_TIMEOUT", float, PEER_TIMEOUT_S, "a number")),
        )

    def pipe(self, should_stop: Callable[[], bool]) -> PipeSettings:
        """How Pipe-mode channels are read; `should_stop` ends a wait on a FIFO."""
        return PipeSettings(self.pipe_timeout_s, self.pipe_shuffle_buffer, should_stop)

    def workers_for(self, on_gpu: bool) -> int:
        """Data-loading worker processes."""
        if self.data_workers is not None:
            return max(0, self.data_workers)
        if not on_gpu:
            return 0  # on the CPU the network needs every core; loading inline measured faster here
        return min(MAX_DATA_WORKERS, os.cpu_count() or 1)


def engine_from(environ: Mapping[str, str]) -> str:
    """SEMSEG_ENGINE: `mxnet` (default) or `torch`."""
    engine = (environ.get("SEMSEG_ENGINE") or "mxnet").strip().lower()
    if engine not in ENGINES:
        raise ClientError(
            f"Environment variable SEMSEG_ENGINE={environ['SEMSEG_ENGINE']!r} must be one of {', '.join(ENGINES)}"
        )
    return engine


def env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    return _env(environ, name, int, default, "an integer")


def _env_bool(environ: Mapping[str, str], name: str) -> bool:
    return _env(environ, name, parse_bool, False, "true or false")


def _env(environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T, expected: str) -> T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ClientError(f"Environment variable {name}={raw!r} must be {expected}") from None
