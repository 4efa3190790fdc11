"""This host's part of MXNet's parameter server (ps-lite), and what the training loop exchanges through it.

Start: resolve the hosts (bounded retry), start this host's scheduler and/or server as `python -c "import
mxnet"` with ps-lite's variables (importing MXNet as a server or scheduler runs that role until the workers
finish), set the worker's variables in this process and create the kvstore: `dist_sync` on the CPU,
`dist_device_sync` on GPUs (a host first sums its GPUs' gradients on the GPUs).

Exchanged: every step's gradients (gluon.Trainer with update_on_kvstore=False: the servers sum, every host
applies the same optimizer to the same sum, so the weights stay equal and each host's optimizer state is its
own checkpointable copy), once per iteration a stop flag (so that a signal on any host stops all of them at
the same iteration), once per epoch the validation confusion counts. Counts travel as four 12-bit digits in
float32, exact up to 2**48 for up to 4096 hosts (the kvstore keeps float32; float64 lost the low bits).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np

from semseg.contract.cluster import Cluster
from semseg.distributed.agree import Agreement
from semseg.distributed.hosts import resolve
from semseg.distributed.peers import PeerWatch, give_up, watch_port
from semseg.engines.mxnet.pslite import dmlc_env, roles
from semseg.fit.loop import Hooks
from semseg.fit.metrics import ConfusionMatrix
from semseg.threads import ENV as OMP_ENV

log = logging.getLogger(__name__)

# Above any parameter index of gluon.Trainer (a few hundred), and small: ps-lite places int key k on server
# (k * 9973) % servers in 32-bit arithmetic, so a key of a million overflowed into another key's slot.
_FIRST_KEY = 100_000
_DIGIT_BITS = 12
_DIGITS = 4
_CHILD_EXIT_S = 30.0
# A ps-lite scheduler or server: MXNet runs the role given by DMLC_ROLE while it is imported. It asks Linux to
# kill it when its parent (this host's worker) dies, so that no server outlives a failed worker.
_ROLE_PROCESS = "import ctypes; ctypes.CDLL(None).prctl(1, 9); import mxnet"  # prctl(PR_SET_PDEATHSIG, SIGKILL)


class ParameterServer(Agreement):
    def __init__(self, cluster: Cluster, gpu: bool, port: int, peer_timeout_s: float, failure_file: Path) -> None:
        self.cluster = cluster
        self.failure_file = failure_file
        addresses = {host: resolve(host) for host in cluster.hosts}
        root, mine = addresses[cluster.hosts[0]], addresses[cluster.current_host]
        self._children: list[subprocess.Popen[bytes]] = []
        peers = [(h, addresses[h], watch_port(port, cluster.hosts.index(h))) for h in cluster.peers]
        self.watch = PeerWatch(
            mine, watch_port(port, cluster.rank), peers, peer_timeout_s, self._lost, self._children_ended
        )
        try:
            for role in roles(cluster):
                env = {**os.environ, OMP_ENV: "1", **dmlc_env(cluster, role, root, mine, port)}
                self._children.append(subprocess.Popen([sys.executable, "-c", _ROLE_PROCESS], env=env))
            self.kv = self._join(cluster, gpu, root, mine, port)
        except BaseException:
            self.abandon()
            self.watch.close()
            raise
        self.watch.arm()
        self._keys: dict[str, int] = {}

    def _join(self, cluster: Cluster, gpu: bool, root: str, mine: str, port: int) -> Any:
        """This process as ps-lite's worker: the kvstore, once every worker and server has joined."""
        os.environ.update(dmlc_env(cluster, "worker", root, mine, port))
        kind = "dist_device_sync" if gpu else "dist_sync"
        log.info(
            "Parameter server: host %s (%d of %d) runs %s and a worker; scheduler at %s:%d; kvstore %s",
            cluster.current_host, cluster.rank, cluster.size, " and ".join(roles(cluster)), root, port, kind,
        )  # fmt: skip
        return mx.kv.create(kind)

    def allreduce(self, name: str, values: np.ndarray) -> np.ndarray:
        """The float32 sum of `values` over the hosts (every host calls it, in the same order)."""
        array = mx.nd.array(values, dtype="float32")
        key = self._keys.get(name)
        if key is None:
            key = self._keys[name] = _FIRST_KEY + len(self._keys)
            self.kv.init(key, mx.nd.zeros(array.shape))
        self.kv.push(key, array)
        self.kv.pull(key, out=array)
        return array.asnumpy()

    def sum_counts(self, name: str, counts: np.ndarray) -> np.ndarray:
        """The exact int64 sum of non-negative integer `counts` over the hosts."""
        return from_digits(self.allreduce(name, to_digits(counts)))

    def drain(self) -> None:
        """Before hosts stop early: every host's exchanges of the last step complete (a host that left at
        once could take half of this host's pending gradient sums with its server), then stop watching."""
        mx.nd.waitall()
        self.kv._barrier()
        self.watch.disarm()

    def finish(self) -> None:
        """After the last exchange: wait for every host, stop watching, and let the servers end."""
        self.kv._barrier()
        self.watch.disarm()
        del self.kv  # the kvstore of ps-lite's worker 0 tells the servers to stop as it is freed
        gc.collect()  # the trainer that holds it sits in reference cycles of Gluon blocks
        for child in self._children:
            try:
                child.wait(timeout=_CHILD_EXIT_S)
            except subprocess.TimeoutExpired:
                child.kill()
        self.watch.close()

    @property
    def parts(self) -> int:
        return self.cluster.size

    @property
    def part(self) -> int:
        return self.cluster.rank

    def part_name(self, part: int) -> str:
        return self.cluster.hosts[part]

    def _children_ended(self) -> str | None:
        for role, child in zip(roles(self.cluster), self._children):
            if child.poll() is not None:
                return f"The parameter server's {role} on this host ended with exit code {child.returncode}"
        return None

    def _lost(self, what: str) -> None:
        """A peer or a ps-lite process is gone: this host cannot go on (its worker may wait inside C)."""
        give_up(what, self.cluster.current_host, self.failure_file, self.abandon)

    def abandon(self) -> None:
        """A failure: end the ps-lite processes; the process must now end without freeing the kvstore
        (freeing waits for every worker), see cli.run."""
        for child in self._children:
            child.send_signal(signal.SIGKILL)


def to_digits(counts: np.ndarray) -> np.ndarray:
    """Non-negative integers below 2**48 as float32 digits (4, *shape) of 12 bits: sums of up to 4096 of
    them stay exact in float32."""
    counts = counts.astype(np.int64)
    mask = (1 << _DIGIT_BITS) - 1
    return np.stack([(counts >> (_DIGIT_BITS * i)) & mask for i in range(_DIGITS)]).astype(np.float32)


def from_digits(digits: np.ndarray) -> np.ndarray:
    """The int64 numbers of (summed) `to_digits` digits."""
    whole = np.rint(digits).astype(np.int64)
    return sum((whole[i] << (_DIGIT_BITS * i) for i in range(_DIGITS)), np.zeros(whole.shape[1:], np.int64))


def broadcast_parameters(trainer: Any) -> None:
    """Every host joins the kvstore's broadcast of the initial weights (from ps-lite's worker 0) here, at
    the same point. An inference pass on the CPU may have left a weight in MKL-DNN's own layout, which the
    kvstore cannot send (its push fails and the server then crashes with "init <key> first"): each weight is
    first copied back into the default layout."""
    for param in trainer._params:
        if not param._deferred_init:
            param.set_data(param.data().copy())
    trainer._init_kvstore()
    trainer._init_params()


class DistributedLoop:
    """An engine loop whose validation counts are summed over the hosts: mIOU and pixel accuracy are global,
    and so are the best model and early stopping, identically on every host."""

    def __init__(self, loop: Any, server: ParameterServer) -> None:
        self.loop = loop
        self.server = server

    def train_epoch(
        self, batches: Iterable[Any], epoch: int, hooks: Hooks, progress_every: int, should_stop: Callable[[], bool]
    ) -> tuple[float, float] | None:
        result: tuple[float, float] | None = self.loop.train_epoch(batches, epoch, hooks, progress_every, should_stop)
        return result

    @property
    def learning_rate(self) -> float:
        return float(self.loop.learning_rate)

    def classes(self, images: list[Any]) -> list[Any]:
        return list(self.loop.classes(images))

    def evaluate(self, batches: Iterable[Any], whole_images: bool) -> ConfusionMatrix:
        local: ConfusionMatrix = self.loop.evaluate(batches, whole_images)
        total = ConfusionMatrix(local.num_classes)
        total.add_counts(self.server.sum_counts("confusion", local.matrix.reshape(-1)))
        return total
