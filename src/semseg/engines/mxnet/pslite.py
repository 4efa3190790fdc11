"""The roles MXNet's parameter server (ps-lite) gives the hosts, and its DMLC_* variables, as SageMaker's MXNet
framework container laid them out: a scheduler on the first host, one server and one worker (the training
process) on every host. No MXNet here: the process that starts the roles imports it later.
"""

from __future__ import annotations

from semseg.contract.cluster import Cluster


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
