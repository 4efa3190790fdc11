"""Several training processes of the PyTorch engine on one host, started by PyTorch's own launcher (torch.distributed's
elastic agent, what `torchrun --standalone` runs): one per GPU (or per SEMSEG_CPU_DEVICES slot, over gloo), each
with DDP set up, each ending with an Outcome that the launcher's caller turns into the job's result or error.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from semseg.contract.config import Config
from semseg.contract.errors import AlgorithmError, ClientError, JobError, Stopped
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag
from semseg.engines.torch.devices import Plan
from semseg.fit.loop import FitResult
from semseg.logs import setup_logging

log = logging.getLogger(__name__)

# train_process(job, config, options, stop, device, rank, processes)
Target = Callable[[Job, Config, RunOptions, StopFlag, torch.device, int, int], FitResult]


@dataclass(frozen=True)
class Outcome:
    """What a worker process hands back to the launcher: its result, or the error it ended with."""

    result: FitResult | None = None
    kind: str = ""
    message: str = ""
    signum: int = 0


def launch(job: Job, config: Config, options: RunOptions, plan: Plan, target: Target) -> FitResult:
    """`target` (the engine's train_process) in `plan.processes` processes; the first one's result."""

    log.info("Starting %d training processes (%s, torch.distributed %s)", plan.processes, plan.kind, plan.backend)
    launch_config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=plan.processes,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="127.0.0.1:0",  # a free port, as `torchrun --standalone` picks
        max_restarts=0,
        monitor_interval=1,
        start_method="spawn",
    )
    results = elastic_launch(launch_config, _worker)(job, config, options, plan, target)
    outcomes = [results[rank] for rank in sorted(results)]
    for outcome in outcomes:
        if outcome.kind == "ClientError":
            raise ClientError(outcome.message)
    for outcome in outcomes:
        if outcome.kind == "Stopped":
            raise Stopped(outcome.signum)
        if outcome.kind:
            raise AlgorithmError(outcome.message)
    first = outcomes[0].result  # every process ends with the same result: fit's decisions follow global metrics
    assert first is not None
    return first


def _worker(job: Job, config: Config, options: RunOptions, plan: Plan, target: Target) -> Outcome:
    """One process of a multi-process job (the launcher sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*)."""
    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    setup_logging(logging.INFO if rank == 0 else logging.WARNING)  # the first process speaks for the job
    device = torch.device("cuda", local) if plan.kind == "cuda" else torch.device("cpu")
    if plan.kind == "cuda":
        torch.cuda.set_device(device)
    else:  # the processes share the cores
        torch.set_num_threads(max(1, torch.get_num_threads() // plan.processes))
    dist.init_process_group(plan.backend)
    stop = StopFlag()
    try:
        with stop.installed():
            return Outcome(target(job, config, options, stop, device, rank, plan.processes))
    except Stopped as exc:
        return Outcome(None, "Stopped", str(exc), exc.signum)
    except JobError as exc:
        return Outcome(None, type(exc).__name__, exc.message)
    except Exception as exc:  # reported by the launcher's caller as an AlgorithmError
        log.exception("Training process %d failed", rank)
        return Outcome(None, "AlgorithmError", f"Training process {rank} failed: {type(exc).__name__}: {exc}")
    finally:
        dist.destroy_process_group()
