"""Two containers on a user-defined Docker network as two SageMaker hosts, started with `docker run`: one of
them dies or is stopped mid-run. (SDK local mode's compose stops every container as soon as one exits, so
it cannot show what the survivor does; the two-instance fit itself is in test_sdk_local_mode.py.)"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.container.support import docker, make_job

pytestmark = pytest.mark.container

PEER_TIMEOUT = 10


@pytest.fixture
def network() -> Iterator[str]:
    name = f"semseg-test-{uuid.uuid4().hex[:8]}"
    docker("network", "create", name)
    yield name
    docker("network", "rm", name, check=False)


def start_hosts(image: str, tmp_path: Path, network: str) -> tuple[list[str], list[Path]]:
    suffix = uuid.uuid4().hex[:5]
    hosts = [f"algo-1-{suffix}", f"algo-2-{suffix}"]
    bases = []
    for host in hosts:
        base = make_job(image, tmp_path / host, {"epochs": "30", "mini_batch_size": "2"})
        resources = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0"}
        (base / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resources))
        docker(
            "run", "-d", "--name", host, "--hostname", host, "--network", network, "-v", f"{base}:/opt/ml",
            "-e", f"SEMSEG_PEER_TIMEOUT={PEER_TIMEOUT}", "-e", "SEMSEG_PROGRESS_EVERY=1", image, "train",
        )  # fmt: skip
        bases.append(base)
    return hosts, bases


def wait_for_line(container: str, needle: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in docker("logs", container, check=False).stdout:
            return
        time.sleep(1)
    raise AssertionError(
        f"{container}: no {needle!r} in time:\n{docker('logs', container, check=False).stdout[-3000:]}"
    )


def exit_code(container: str, timeout: int) -> int:
    return int(docker("wait", container, timeout=timeout).stdout.strip())


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_host_that_dies_or_is_stopped(image: str, tmp_path: Path, network: str, how: str) -> None:
    hosts, bases = start_hosts(image, tmp_path, network)
    try:
        wait_for_line(hosts[1], "epoch: 1, iterations: 1 ")
        docker(how, hosts[1])  # kill: SIGKILL, a host that fails; stop: SIGTERM, as StopTrainingJob
        ended = time.monotonic()
        code = exit_code(hosts[0], timeout=PEER_TIMEOUT + 110)
        log = docker("logs", hosts[0]).stdout
        if how == "kill":
            assert time.monotonic() - ended < PEER_TIMEOUT + 45
            assert code == 1, log[-3000:]
            failure = (bases[0] / "output" / "failure").read_text()
            assert failure.startswith(f"AlgorithmError: Host {hosts[1]} has not answered for "), failure
        else:
            assert code == 143 and exit_code(hosts[1], 30) == 143, log[-3000:]
            assert "Another host was asked to stop: stopping with it" in log
            assert not (bases[0] / "output" / "failure").exists()
            assert {"model_algo-1", "model_best.params"} <= {p.name for p in (bases[0] / "model").iterdir()}
    finally:
        docker("rm", "-f", *hosts, check=False)
