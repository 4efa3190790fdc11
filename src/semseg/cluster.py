"""The hosts of a job (resourceconfig.json) and the roles MXNet's parameter server gives them.

As SageMaker's MXNet framework container laid it out: a scheduler on the first host, one server and one
worker (the training process) on every host, all told where the scheduler is and how many of each there
are through ps-lite's DMLC_* variables. No MXNet here: the process that starts the roles imports it later.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from semseg.errors import ClientError

log = logging.getLogger(__name__)

DEFAULT_PS_PORT = 8000  # the scheduler's, as in SageMaker's MXNet container; peers are watched on the next ports
RESOLVE_TIMEOUT_S = 300.0  # SageMaker's host names may resolve only some time after the container starts


@dataclass(frozen=True)
class Cluster:
    hosts: tuple[str, ...]
    current_host: str
    interface: str | None = None  # network_interface_name (eth0 on SageMaker and in local mode)

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def leader(self) -> bool:
        """The first host: it runs the scheduler and alone writes artifacts and checkpoints."""
        return self.rank == 0

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(host for host in self.hosts if host != self.current_host)

    def roles(self) -> tuple[str, ...]:
        """The ps-lite processes this host starts beside its worker."""
        return ("scheduler", "server") if self.leader else ("server",)

    def dmlc_env(self, role: str, root_ip: str, node_ip: str, port: int) -> dict[str, str]:
        """ps-lite's variables for a process of `role` on this host."""
        env = {
            "DMLC_ROLE": role,
            "DMLC_PS_ROOT_URI": root_ip,
            "DMLC_PS_ROOT_PORT": str(port),
            "DMLC_NUM_SERVER": str(self.size),
            "DMLC_NUM_WORKER": str(self.size),
            "DMLC_NODE_HOST": node_ip,  # this host's address, whatever the interface's first address is
        }
        if self.interface:
            env["DMLC_INTERFACE"] = self.interface
        return env


def resolve(
    host: str,
    timeout_s: float = RESOLVE_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
    lookup: Callable[[str], str] = socket.gethostbyname,
) -> str:
    """The host's IPv4 address, retried with backoff until `timeout_s` (SageMaker's DNS is set up late)."""
    waited, delay = 0.0, 0.5
    while True:
        try:
            return lookup(host)
        except OSError as exc:
            if waited >= timeout_s:
                raise ClientError(
                    f"Host {host!r} of resourceconfig.json did not resolve in {timeout_s:g} s ({exc}). Every "
                    "host of a multi-instance job must reach the others by name."
                ) from None
            log.info("Waiting for host %s to resolve (%s)", host, exc)
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)


_running = {"parameter_server": False}


def parameter_server_started() -> None:
    _running["parameter_server"] = True


def parameter_server_finished() -> None:
    _running["parameter_server"] = False


def must_exit_at_once() -> bool:
    """True when a parameter server was started and not finished: the job failed on this host, and freeing
    MXNet's kvstore would wait forever for the other hosts' workers (see cli.run)."""
    return _running["parameter_server"]
