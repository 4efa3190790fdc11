"""The hosts of a job, as resourceconfig.json lists them: which host this is, its rank, the first host (the
leader, which alone writes artifacts and checkpoints). Plain data: the engines' exchanges build on it."""

from __future__ import annotations

from dataclasses import dataclass

from semseg.contract.errors import ClientError


@dataclass(frozen=True)
class Cluster:
    hosts: tuple[str, ...]
    current_host: str
    interface: str | None = None  # network_interface_name (eth0 on SageMaker and in local mode)
    instance_type: str | None = None  # current_instance_type (ml.p5.48xlarge; "local" in local mode)

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

    def batch_share(self, mini_batch_size: int) -> int:
        """The images of `mini_batch_size` (the batch of all hosts) that every host has at least: how many devices
        (or processes) a host can train on. ClientError when a host would have none."""
        if mini_batch_size < self.size:
            raise ClientError(
                f"mini_batch_size={mini_batch_size} is the batch of all {self.size} hosts together; "
                "give it at least one image per host."
            )
        return mini_batch_size // self.size
