"""Host names of a multi-host job, resolved with a bounded retry: SageMaker's DNS entries for the other hosts may
appear only some time after the container starts (its own containers wait up to 15 minutes)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from semseg.contract.errors import ClientError

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT_S = 300.0


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
