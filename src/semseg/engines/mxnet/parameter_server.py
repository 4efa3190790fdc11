"""Several hosts on MXNet's parameter server (ps-lite), as SageMaker's MXNet framework container laid them out:
a scheduler on the first host, one server and one worker (the training process) on every host, with their
DMLC_* variables; this host's ps-lite processes, its kvstore, and the watch of the other hosts
(semseg.distributed.peers). What the hosts exchange through the kvstore: semseg.engines.mxnet.exchange.

Start: resolve the hosts (bounded retry), start this host's scheduler and/or server as `python -c "import
mxnet"` with ps-lite's variables (importing MXNet as a server or scheduler runs that role until the workers
finish), set the worker's variables in this process and create the kvstore: `dist_sync` on the CPU,
`dist_device_sync` on GPUs (a host first sums its GPUs' gradients on the GPUs).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import mxnet as mx

from semseg.contract.cluster import Cluster
from semseg.distributed.names import resolve
from semseg.distributed.peers import PeerWatch, give_up, watch_port
from semseg.threads import ENV as OMP_ENV

log = logging.getLogger(__name__)

_CHILD_EXIT_S = 30.0
# A ps-lite scheduler or server: MXNet runs the role given by DMLC_ROLE while it is imported. It asks Linux to
# kill it when its parent (this host's worker) dies, so that no server outlives a failed worker.
_ROLE_PROCESS = "import ctypes; ctypes.CDLL(None).prctl(1, 9); import mxnet"  # prctl(PR_SET_PDEATHSIG, SIGKILL)


def roles(cluster: Cluster) -> tuple[str, ...]:
    """The ps-lite processes this host starts beside its worker."""
    return ("scheduler", "server") if cluster.leader else ("server",)


def dmlc_env(cluster: Cluster, role: str, root_ip: str, node_ip: str, port: int) -> dict[str, str]:
    """ps-lite's variables for a process of `role` on this host."""
    env = {
        "DMLC_ROLE": role,
        "DMLC_PS_ROOT_URI": root_ip,
        "DMLC_PS_ROOT_PORT": str(port),
        "DMLC_NUM_SERVER": str(cluster.size),
        "DMLC_NUM_WORKER": str(cluster.size),
        "DMLC_NODE_HOST": node_ip,  # this host's address, whatever the interface's first address is
    }
    if cluster.interface:
        env["DMLC_INTERFACE"] = cluster.interface
    return env


class ParameterServer:
    """This host's part of the parameter server: its ps-lite processes, its worker's kvstore (`kv`) and its watch
    of the other hosts."""

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

    def _join(self, cluster: Cluster, gpu: bool, root: str, mine: str, port: int) -> Any:
        """This process as ps-lite's worker: the kvstore, once every worker and server has joined."""
        os.environ.update(dmlc_env(cluster, "worker", root, mine, port))
        kind = "dist_device_sync" if gpu else "dist_sync"
        log.info(
            "Parameter server: host %s (%d of %d) runs %s and a worker; scheduler at %s:%d; kvstore %s",
            cluster.current_host, cluster.rank, cluster.size, " and ".join(roles(cluster)), root, port, kind,
        )  # fmt: skip
        return mx.kv.create(kind)

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
        (freeing waits for every worker): see semseg.contract.errors.ExitAtOnce."""
        for child in self._children:
            child.send_signal(signal.SIGKILL)
