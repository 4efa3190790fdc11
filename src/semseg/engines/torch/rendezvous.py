"""Several hosts on torch.distributed, the way SageMaker's own PyTorch containers start `torchrun`
(sagemaker-training's TorchDistributedRunner, whose conventions are carried over here rather than imported, see
the README's "Several instances"): the hosts of resourceconfig.json (sorted), the first one the master of a
static rendezvous on port 7777 (SEMSEG_MASTER_PORT), every host's node rank its index; the interface of
`network_interface_name` for NCCL and gloo; on the instances with EFA, libfabric's EFA provider (and its
device RDMA where the toolkit asks for it) for NCCL across the hosts. And the peer watch of the other hosts, as
the MXNet engine's hosts have it (semseg.distributed.peers)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

from semseg.contract.cluster import Cluster
from semseg.contract.job import Job
from semseg.contract.options import RunOptions
from semseg.distributed.names import resolve
from semseg.distributed.peers import PeerWatch, give_up, watch_port

log = logging.getLogger(__name__)

# sagemaker-training's SM_EFA_NCCL_INSTANCES (FI_PROVIDER=efa) with the newer p5 sizes, and SM_EFA_RDMA_INSTANCES
# (FI_EFA_USE_DEVICE_RDMA=1): the toolkit tests the instance type against these lists, not the device.
EFA_INSTANCES = frozenset(
    {
        "ml.g4dn.8xlarge", "ml.g4dn.12xlarge", "ml.g4dn.16xlarge", "ml.g5.8xlarge", "ml.g5.12xlarge",
        "ml.g5.16xlarge", "ml.g5.48xlarge", "ml.g6.12xlarge", "ml.g6.16xlarge", "ml.g6e.24xlarge",
        "ml.p3dn.24xlarge", "ml.p4d.24xlarge", "ml.p4de.24xlarge", "ml.p5.4xlarge", "ml.p5.48xlarge",
        "ml.p5e.48xlarge", "ml.p5en.48xlarge", "ml.p6-b200.48xlarge",
    }
)  # fmt: skip
EFA_RDMA_INSTANCES = frozenset({"ml.p4d.24xlarge", "ml.p4de.24xlarge"})
LOST_MARGIN_S = 5.0  # after a worker failed: how much longer than the peer timeout to wait for the watch


@dataclass(frozen=True)
class Rendezvous:
    """Where the hosts meet: the master's address and port, this host's node rank and address, and every peer's
    (host, address, peer-watch port)."""

    nodes: int
    node_rank: int
    master: str
    port: int
    address: str
    peers: tuple[tuple[str, str, int], ...]

    @property
    def watch_port(self) -> int:
        return watch_port(self.port, self.node_rank)


def rendezvous(cluster: Cluster, port: int) -> Rendezvous:
    """The job's rendezvous; host names resolved with a bounded retry (SageMaker's DNS comes up late)."""
    addresses = {host: resolve(host) for host in cluster.hosts}
    peers = tuple((h, addresses[h], watch_port(port, cluster.hosts.index(h))) for h in cluster.peers)
    master = addresses[cluster.hosts[0]]
    return Rendezvous(cluster.size, cluster.rank, master, port, addresses[cluster.current_host], peers)


def network_env(cluster: Cluster, gpu: bool) -> dict[str, str]:
    """The variables the processes of a multi-host job need for the network between the hosts."""
    env: dict[str, str] = {}
    if cluster.interface:
        env["GLOO_SOCKET_IFNAME"] = cluster.interface  # the stop flag and the other CPU exchanges
        if gpu:
            env["NCCL_SOCKET_IFNAME"] = cluster.interface
    if gpu and cluster.instance_type in EFA_INSTANCES:
        env.update(FI_PROVIDER="efa", RDMAV_FORK_SAFE="1")  # libfabric's EFA for NCCL; fork-safe verbs (loaders)
        if cluster.instance_type in EFA_RDMA_INSTANCES:
            env["FI_EFA_USE_DEVICE_RDMA"] = "1"
    return env


def set_network_env(cluster: Cluster, gpu: bool, environ: MutableMapping[str, str] = os.environ) -> None:
    """network_env into `environ` (the workers inherit it), where the user's own setting does not say otherwise."""
    for name, value in network_env(cluster, gpu).items():
        if name in environ and environ[name] != value:
            log.info("Keeping %s=%s from the environment (the job's network would set %s)", name, environ[name], value)
        environ.setdefault(name, value)
    chosen = {name: environ[name] for name in network_env(cluster, gpu)}
    log.info("Network between the hosts: %s", ", ".join(f"{k}={v}" for k, v in chosen.items()) or "the defaults")


def watch_peers(job: Job, options: RunOptions, meet: Rendezvous, kill_workers: Callable[[], None]) -> PeerWatch:
    """The watch of the other hosts: one that is lost ends this host's workers and this process at once."""

    def lost(what: str) -> None:
        give_up(what, job.current_host, job.paths.failure_file, kill_workers)

    return PeerWatch(meet.address, meet.watch_port, meet.peers, options.peer_timeout_s, lost)


def peer_may_have_failed(kinds: set[str]) -> bool:
    """The workers' outcomes show a failure that is neither a ClientError nor a stop of their own: maybe because
    another host died (the collectives then fail at once), which the peer watch names within its timeout."""
    return "AlgorithmError" in kinds and not kinds & {"ClientError", "Stopped"}


def wait_for_the_watch(peer_timeout_s: float) -> None:
    seconds = peer_timeout_s + LOST_MARGIN_S
    log.info("A training process failed: waiting up to %.0f s for the peer watch to tell whether a host died", seconds)
    time.sleep(seconds)  # the watch ends this process (os._exit) when a peer is lost
