"""Notice a host that died, so the others fail instead of hanging.

A worker of MXNet's parameter server waits inside C, without a timeout, for the pushes of every other
worker; a dead host would hold the rest until the job's time limit. ps-lite's own heartbeats
(PS_HEARTBEAT_INTERVAL/TIMEOUT) only let the scheduler count dead nodes: nothing wakes a waiting worker.
So every host answers TCP connections on its own port (DMLC port + 1 + its rank) and probes its peers'
ports every second from a thread; a peer that has not answered for `timeout_s` is lost, and `on_lost` (which
writes the failure file and ends the process: the main thread may be stuck in C) is called with what
happened. The same thread runs `check` every second, for this host's own ps-lite processes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from semseg.contract.files import write_text

log = logging.getLogger(__name__)

PROBE_EVERY_S = 1.0


def watch_port(port: int, rank: int) -> int:
    """The peer watch's port of host `rank`: after the engine's own (the scheduler's, the rendezvous')."""
    return port + 1 + rank


def give_up(what: str, host: str, failure_file: Path, cleanup: Callable[[], None]) -> None:
    """A peer (or a process of this host that the hosts need) is gone: `cleanup`, the failure file, and the end
    of this process at once (its training may be waiting inside a collective, in C)."""
    message = f"AlgorithmError: {what}; training on several hosts cannot go on without it. This host: {host}."
    log.error("%s", message)
    cleanup()
    try:
        write_text(failure_file, message)
    finally:
        logging.shutdown()
        os._exit(1)


class PeerWatch:
    """Listen on (`address`, `port`) and probe `peers` = [(host, address, port)]; use as a context manager."""

    def __init__(
        self,
        address: str,
        port: int,
        peers: Sequence[tuple[str, str, int]],
        timeout_s: float,
        on_lost: Callable[[str], None],
        check: Callable[[], str | None] = lambda: None,
    ) -> None:
        self.peers = list(peers)
        self.check = check
        self.timeout_s = timeout_s
        self.on_lost = on_lost
        self._armed = threading.Event()
        self._closed = threading.Event()
        self._server = socket.create_server((address, port), reuse_port=False)
        self._server.settimeout(PROBE_EVERY_S)
        self._threads = [
            threading.Thread(target=self._answer, name="peer-answer", daemon=True),
            threading.Thread(target=self._probe, name="peer-probe", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> PeerWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def arm(self) -> None:
        """Start judging: every peer is up (the parameter server connected them all)."""
        self._armed.set()

    def disarm(self) -> None:
        """Stop judging (the hosts' last exchange is over; they may now end in any order); still answer."""
        self._armed.clear()

    def close(self) -> None:
        self._armed.clear()
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._server.close()

    def _answer(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:  # the accept timed out (or the socket closed)
                continue
            connection.close()

    def _probe(self) -> None:
        answered = {host: time.monotonic() for host, _, _ in self.peers}
        while not self._closed.wait(PROBE_EVERY_S):
            now = time.monotonic()
            problem = self.check() if self._armed.is_set() else None
            if problem:
                self.on_lost(problem)
                return
            for host, address, port in self.peers:
                if not self._armed.is_set():
                    answered[host] = now
                    continue
                try:
                    with socket.create_connection((address, port), timeout=PROBE_EVERY_S):
                        answered[host] = time.monotonic()
                except OSError:
                    silent = time.monotonic() - answered[host]
                    if silent >= self.timeout_s:
                        self.on_lost(
                            f"Host {host} has not answered for {silent:.0f} s (SEMSEG_PEER_TIMEOUT): it failed or "
                            "was stopped. Its own log and failure reason say why"
                        )
                        return
