"""Several training processes of the PyTorch engine on one host, started by PyTorch's own launcher (torch.distributed's
elastic agent, what `torchrun --standalone` runs): one per GPU (or per SEMSEG_CPU_DEVICES slot, over gloo), each
with DDP set up, each ending with an Outcome that the launcher's caller turns into the job's result or error.

The agent runs in a thread, so this process keeps its own stop handling (the agent would otherwise install
handlers that end the job as a failure and kill the workers 30 s later): a stop signal is passed on to every
worker as soon as it handles signals (one still starting would die of it), and the workers stop together at the
same iteration (a collective stop) and end as stopped; a second signal ends them with the job. A worker that fails
ends its process, so the agent ends the others within seconds (they would otherwise wait in a collective for the
failed one until its timeout); each worker leaves its Outcome in a file, and a worker that ended without one
(killed: out of memory, SIGKILL) is named by its signal.

Several hosts: every host runs its agent with torch's static rendezvous at the first host (semseg.engines.torch.
hosts), so the processes of all hosts form one group; a peer watch (semseg.distributed.peers) ends this host
with an error naming the host that died or was stopped, as the MXNet engine's hosts do; it judges from the
moment every worker of this host joined the group until the first one passed the job's last barrier.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import pickle
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.launcher.api import LaunchConfig, elastic_launch

from semseg.contract.config import Config
from semseg.contract.errors import AlgorithmError, ClientError, JobError, Stopped
from semseg.contract.files import atomic_write
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.contract.signals import StopFlag, StopSignal
from semseg.distributed.part import Part
from semseg.distributed.peers import PeerWatch
from semseg.engines.torch.devices import Devices
from semseg.engines.torch.exchange import Exchange
from semseg.engines.torch.rendezvous import Rendezvous, peer_may_have_failed, wait_for_the_watch, watch_peers
from semseg.fit.assembly import Trained
from semseg.logs import setup_logging

log = logging.getLogger(__name__)

# train_process(job, config, options, stop, device, part)
Target = Callable[[Job, Config, RunOptions, StopSignal, torch.device, Part], Trained]
POLL_SECONDS = 0.2
MONITOR_INTERVAL_S = 1  # how often torch's agent looks at its workers
FAILED_WORKER_DELAY_S = 2.5 * MONITOR_INTERVAL_S
RENDEZVOUS_TIMEOUT_S = 900  # the other hosts may start minutes later (SageMaker's containers wait 15 minutes)
RUN_ID = "semseg"  # the same on every host: the prefix of the rendezvous' keys in the master's store
KILLED = (
    "Training process {rank} was killed by signal {signal} and could not report why. When the host runs out of "
    "memory, the kernel kills the largest process this way: lower mini_batch_size, validation_mini_batch_size or "
    "crop_size, or use an instance with more memory."
)


@dataclass(frozen=True)
class Outcome:
    """How a worker process ended: its result, or the error it ended with."""

    result: Trained | None = None
    kind: str = ""
    message: str = ""
    signum: int = 0


def launch(
    job: Job,
    config: Config,
    options: RunOptions,
    devices: Devices,
    target: Target,
    stop: StopFlag,
    meet: Rendezvous | None = None,
) -> Trained:
    """`target` (the engine's train_process) in `devices.processes` processes, of all hosts' processes when `meet`
    says where the hosts meet; the first local one's result."""
    where = f" on each of {devices.hosts} hosts, {devices.world} in all" if meet else ""
    log.info(
        "Starting %d training processes (%s, torch.distributed %s)%s",
        devices.processes, devices.kind, devices.backend, where,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="semseg-outcomes-") as folder:
        outcomes = Path(folder)
        watch = watch_peers(job, options, meet, _kill_workers(outcomes)) if meet else None
        try:
            launched = _Agent(_launch_config(devices, meet), (job, config, options, devices, target, outcomes))
            launched.start()
            launched.wait(stop, outcomes, devices.processes, watch)  # a second stop signal ends the job, workers too
            found = _read_outcomes(outcomes, devices.processes)
            if watch is not None and peer_may_have_failed({outcome.kind for outcome in found.values()}):
                wait_for_the_watch(options.peer_timeout_s)
            return _result(found, launched.failed)
        finally:
            if watch is not None:
                watch.close()


def _launch_config(devices: Devices, meet: Rendezvous | None) -> LaunchConfig:
    common: dict[str, Any] = {
        "nproc_per_node": devices.processes, "max_restarts": 0, "monitor_interval": MONITOR_INTERVAL_S,
        "start_method": "spawn",
    }  # fmt: skip
    if meet is None:
        return LaunchConfig(
            min_nodes=1,
            max_nodes=1,
            run_id=str(uuid.uuid4()),
            rdzv_backend="c10d",
            rdzv_endpoint="127.0.0.1:0",  # a free port, as `torchrun --standalone` picks
            **common,
        )
    return LaunchConfig(  # `torchrun --nnodes N --master_addr A --master_port P --node_rank R`
        min_nodes=meet.nodes,
        max_nodes=meet.nodes,
        run_id=RUN_ID,
        rdzv_backend="static",
        rdzv_endpoint=f"{meet.master}:{meet.port}",
        rdzv_configs={"rank": meet.node_rank, "timeout": RENDEZVOUS_TIMEOUT_S},
        local_addr=meet.address,
        **common,
    )


def _kill_workers(outcomes: Path) -> Callable[[], None]:
    def kill() -> None:
        for pid in _pids(outcomes, "ready"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    return kill


class _Agent(threading.Thread):
    """torch's elastic agent in a thread (so it installs no signal handlers); what it raised, if anything."""

    def __init__(self, config: LaunchConfig, args: tuple[object, ...]) -> None:
        super().__init__(name="semseg-elastic-agent", daemon=True)
        self.config, self.args = config, args
        self.failed: ChildFailedError | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(_not_the_thread_warning)
        try:
            elastic_launch(self.config, _worker)(*self.args)
        except ChildFailedError as exc:
            self.failed = exc
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            self.error = exc

    def wait(self, stop: StopFlag, outcomes: Path, processes: int, watch: PeerWatch | None) -> None:
        """Until the workers end; a stop signal to this process is passed on once to each worker, as soon as it
        handles it (a worker that is still starting would be killed by it: it waits until the worker is ready).
        The peer watch judges from when all workers joined the process group until one passed the last barrier."""
        passed_on: set[int] = set()
        armed = done = False
        while self.is_alive():
            self.join(POLL_SECONDS)
            if stop.signum is not None:
                for pid in set(_pids(outcomes, "ready")) - passed_on:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, stop.signum)
                    passed_on.add(pid)
            if watch is not None and not armed and len(_pids(outcomes, "joined")) == processes:
                watch.arm()
                armed = True
            if watch is not None and not done and _pids(outcomes, "done"):
                watch.disarm()
                done = True
        if self.error is not None:
            raise self.error


def _not_the_thread_warning(record: logging.LogRecord) -> bool:
    """Drop the agent's lines that this module says better: the signals are handled here (above), and a failed
    worker is reported by the job's error (the agent would log its exit's traceback, not the worker's)."""
    message = str(record.msg)
    return "running on a child thread" not in message and not message.startswith("failed (exitcode")


def _pids(folder: Path, stage: str) -> list[int]:
    """The pids of the workers that reached `stage`: ready (they handle stop signals), joined (the process
    group: every host is up), done (past the job's last barrier), each in its <stage>-<local rank> file."""
    pids = []
    for path in folder.glob(f"{stage}-*"):
        with contextlib.suppress(OSError, ValueError):
            pids.append(int(path.read_text()))
    return pids


def _mark(folder: Path, stage: str, local: int) -> None:
    atomic_write(folder / f"{stage}-{local}", lambda tmp: tmp.write_text(str(os.getpid())))


def _read_outcomes(folder: Path, processes: int) -> dict[int, Outcome]:
    found = {}
    for rank in range(processes):
        path = folder / f"{rank}.pickle"
        if path.is_file():
            found[rank] = pickle.loads(path.read_bytes())
    return found


def _result(outcomes: dict[int, Outcome], failed: ChildFailedError | None) -> Trained:
    """The job's result, or its error: a ClientError first (the cause; the others failed with it), then a stop,
    then a process that was killed, then any other error."""
    for outcome in outcomes.values():
        if outcome.kind == "ClientError":
            raise ClientError(outcome.message)
    for outcome in outcomes.values():
        if outcome.kind == "Stopped":
            raise Stopped(outcome.signum)
    for failure in failed.failures.values() if failed else []:
        if failure.local_rank not in outcomes:
            name = failure.signal_name() if failure.exitcode < 0 else f"exit code {failure.exitcode}"
            raise AlgorithmError(KILLED.format(rank=failure.local_rank, signal=name))
    for outcome in outcomes.values():
        if outcome.kind:
            raise AlgorithmError(outcome.message)
    first = outcomes.get(0)
    if first is None or first.result is None:
        raise AlgorithmError(f"The training processes ended without a result: {failed or 'no outcome'}")
    return first.result  # every process ends with the same result: fit's decisions follow global metrics


def _worker(job: Job, config: Config, options: RunOptions, devices: Devices, target: Target, outcomes: Path) -> None:
    """One process of a multi-process job (the launcher sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*). It leaves its
    Outcome in `outcomes`; a failed one then ends its process with an error, so the agent ends the others."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: a killed launcher takes its workers with it
    rank, world, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    place = Part(rank, world, local_rank, devices.processes)
    local_stop = StopFlag()
    with local_stop.installed():
        _mark(outcomes, "ready", place.local_rank)  # stop signals are handled from here on
        setup_logging(logging.INFO if place.local_rank == 0 else logging.WARNING)  # each host's first one speaks
        device = torch.device("cuda", place.local_rank) if devices.kind == "cuda" else torch.device("cpu")
        if devices.kind == "cuda":
            torch.cuda.set_device(device)
        else:  # the processes share the cores
            torch.set_num_threads(max(1, torch.get_num_threads() // devices.processes))
        dist.init_process_group(devices.backend)
        _mark(outcomes, "joined", place.local_rank)  # every host's processes are in the group
        # all stop at the same iteration: one all-reduce of a CPU number per iteration, over gloo (on NCCL it would
        # wait for the GPU's queued work every iteration)
        group = dist.new_group(backend="gloo") if devices.backend != "gloo" else None
        host_group = None
        if job.pipes:  # the host's first process reads its FIFOs for all of them
            host_group, _ = dist.new_subgroups(devices.processes, backend="gloo")
        exchange = Exchange(place, job.cluster.hosts, group, host_group)
        part = dataclasses.replace(place, exchange=exchange)
        outcome = _run(target, (job, config, options, local_stop, device, part))
        if outcome.kind in ("", "Stopped"):
            outcome = _last_barrier(exchange, outcome)
        atomic_write(outcomes / f"{place.local_rank}.pickle", lambda tmp: tmp.write_bytes(pickle.dumps(outcome)))
        if outcome.kind in ("", "Stopped"):
            _mark(outcomes, "done", place.local_rank)  # the hosts may part now
    if outcome.kind not in ("", "Stopped"):
        # A peer killed before this process (a connection reset is then this one's failure) is the cause: the agent
        # reports the first process it finds ended, so this one ends a moment later than the agent's next look.
        time.sleep(FAILED_WORKER_DELAY_S)
        raise SystemExit(1)  # without tearing down the process group: the others may be waiting in it
    dist.destroy_process_group()


def _last_barrier(exchange: Exchange, outcome: Outcome) -> Outcome:
    """Every process (of every host) has ended its part, the first one's artifacts written: now they may part."""
    try:
        exchange.drain()
    except Exception as exc:  # noqa: BLE001 - a peer that failed after its part; the watch may name it
        return Outcome(None, "AlgorithmError", f"The training processes did not all reach the job's end: {exc}")
    return outcome


def _run(target: Target, args: tuple) -> Outcome:
    rank = args[5].rank
    try:
        return Outcome(target(*args))
    except Stopped as exc:
        return Outcome(None, "Stopped", str(exc), exc.signum)
    except JobError as exc:
        return Outcome(None, type(exc).__name__, exc.message)
    except Exception as exc:  # reported by the launcher's caller as an AlgorithmError
        log.warning("Training process %d failed", rank, exc_info=True)
        return Outcome(None, "AlgorithmError", f"Training process {rank} failed: {type(exc).__name__}: {exc}")
