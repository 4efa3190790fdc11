"""Several hosts: roles and ps-lite's environment from resourceconfig.json, torch.distributed's rendezvous and
network variables, late host names, the peer watch, and the exact transport of validation counts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from semseg.contract.cluster import Cluster
from semseg.contract.errors import ClientError
from semseg.contract.job import JobPaths, load_job
from semseg.distributed.names import resolve
from semseg.distributed.peers import PeerWatch
from semseg.engines.mxnet.exchange import from_digits, to_digits
from semseg.engines.mxnet.parameter_server import dmlc_env, roles
from semseg.engines.torch.rendezvous import network_env, rendezvous, set_network_env
from tests.helpers import free_port
from tests.settings import write_config

HOSTS = ["algo-1-x7k2q", "algo-2-m4p9d", "algo-3-z8c1r"]


def test_resourceconfig_gives_the_cluster(job_dir: Path) -> None:
    write_config(
        job_dir, "resourceconfig.json", {"current_host": HOSTS[1], "hosts": HOSTS, "network_interface_name": "eth0"}
    )
    cluster = load_job(JobPaths(job_dir)).cluster
    assert (cluster.rank, cluster.size, cluster.leader, cluster.distributed) == (1, 3, False, True)
    assert cluster.peers == (HOSTS[0], HOSTS[2])
    assert roles(cluster) == ("server",)
    assert roles(Cluster(tuple(HOSTS), HOSTS[0])) == ("scheduler", "server")


@pytest.mark.parametrize(
    "config, message",
    [
        ({"current_host": "algo-9", "hosts": HOSTS}, "includes current_host 'algo-9'"),
        ({"current_host": HOSTS[0], "hosts": [HOSTS[0], HOSTS[0]]}, "lists a host twice"),
        ({"current_host": HOSTS[0], "hosts": "algo-1"}, "hosts must be a list"),
    ],
)
def test_a_resourceconfig_that_makes_no_cluster_is_a_client_error(job_dir: Path, config: dict, message: str) -> None:
    write_config(job_dir, "resourceconfig.json", config)
    with pytest.raises(ClientError, match=message):
        load_job(JobPaths(job_dir))


def test_dmlc_environment_of_each_role() -> None:
    cluster = Cluster(tuple(HOSTS), HOSTS[2], "eth0")
    env = dmlc_env(cluster, "worker", "10.0.0.1", "10.0.0.3", 8000)
    assert env == {
        "DMLC_ROLE": "worker",
        "DMLC_PS_ROOT_URI": "10.0.0.1",
        "DMLC_PS_ROOT_PORT": "8000",
        "DMLC_NUM_SERVER": "3",
        "DMLC_NUM_WORKER": "3",
        "DMLC_NODE_HOST": "10.0.0.3",
        "DMLC_INTERFACE": "eth0",
    }
    assert "DMLC_INTERFACE" not in dmlc_env(Cluster(tuple(HOSTS), HOSTS[0]), "server", "a", "b", 1)


def test_host_names_that_resolve_late_are_waited_for_within_a_bound() -> None:
    answers: Iterator[OSError | str] = iter([OSError("not yet"), OSError("not yet"), "10.0.0.2"])
    waits: list[float] = []

    def lookup(_host: str) -> str:
        answer = next(answers)
        if isinstance(answer, OSError):
            raise answer
        return answer

    assert resolve("algo-2", 60, waits.append, lookup) == "10.0.0.2"
    assert waits == [0.5, 1.0]

    def never(_host: str) -> str:
        raise OSError("Name or service not known")

    with pytest.raises(ClientError, match=r"Host 'algo-2' of resourceconfig.json did not resolve in 10 s"):
        resolve("algo-2", 10, lambda _s: None, never)


def test_the_peer_watch_notices_a_silent_peer_only_when_armed() -> None:
    ports = free_port(), free_port()
    lost: list[str] = []
    done = threading.Event()

    def on_lost(what: str) -> None:
        lost.append(what)
        done.set()

    watcher = PeerWatch("127.0.0.1", ports[0], [("algo-2", "127.0.0.1", ports[1])], 2.0, on_lost)
    peer = PeerWatch("127.0.0.1", ports[1], [("algo-1", "127.0.0.1", ports[0])], 60.0, lambda _w: None)
    with watcher:
        watcher.arm()
        time.sleep(3)
        assert not lost, "armed, but the peer answers"
        watcher.disarm()
        peer.close()
        time.sleep(3)  # silent for longer than the 2 s timeout, but disarmed: it does not count
        assert not lost, "disarmed: a silent peer is not judged"
        watcher.arm()  # silent from here on: lost within the timeout and a probe
        started = time.monotonic()
        assert done.wait(10)
        assert time.monotonic() - started < 2 + 3
    assert lost[0].startswith("Host algo-2 has not answered for ")


def test_the_peer_watch_reports_what_check_finds() -> None:
    found: list[str] = []
    with PeerWatch("127.0.0.1", free_port(), [], 60.0, found.append, lambda: "the server ended") as watch:
        watch.arm()
        time.sleep(2.5)
    assert found == ["the server ended"]


def test_counts_travel_exactly_as_float32_digits() -> None:
    counts = np.array([[0, 1, 4095], [4096, 2**40 + 12345, 2**47 - 1]], np.int64)
    digits = to_digits(counts)
    assert digits.dtype == np.float32 and digits.shape == (4, 2, 3)
    summed = sum((to_digits(counts) for _ in range(3)), np.zeros_like(digits))
    assert (from_digits(summed) == 3 * counts).all()
    assert (from_digits(digits) == counts).all()


def test_hosts_are_sorted_so_every_host_agrees_on_the_leader(job_dir: Path) -> None:
    listed = [HOSTS[2], HOSTS[0], HOSTS[1]]
    resources = {"current_host": HOSTS[2], "hosts": listed, "current_instance_type": "ml.p5.48xlarge"}
    write_config(job_dir, "resourceconfig.json", resources)
    cluster = load_job(JobPaths(job_dir)).cluster
    assert cluster.hosts == tuple(HOSTS) and cluster.rank == 2 and not cluster.leader
    assert cluster.instance_type == "ml.p5.48xlarge"


@pytest.mark.parametrize(
    "instance_type, gpu, expected",
    [
        ("local", False, {"GLOO_SOCKET_IFNAME": "eth0"}),
        ("ml.g5.2xlarge", True, {"GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0"}),
        (
            "ml.p5.48xlarge",
            True,
            {"GLOO_SOCKET_IFNAME": "eth0", "NCCL_SOCKET_IFNAME": "eth0", "FI_PROVIDER": "efa", "RDMAV_FORK_SAFE": "1"},
        ),
        (
            "ml.p4d.24xlarge",
            True,
            {
                "GLOO_SOCKET_IFNAME": "eth0",
                "NCCL_SOCKET_IFNAME": "eth0",
                "FI_PROVIDER": "efa",
                "RDMAV_FORK_SAFE": "1",
                "FI_EFA_USE_DEVICE_RDMA": "1",
            },
        ),
        ("ml.p5.48xlarge", False, {"GLOO_SOCKET_IFNAME": "eth0"}),  # the CPU: no NCCL, no EFA
    ],
)
def test_the_torch_engine_sets_the_network_as_sagemakers_toolkit(instance_type: str, gpu: bool, expected: dict) -> None:
    cluster = Cluster(tuple(HOSTS), HOSTS[0], "eth0", instance_type)
    assert network_env(cluster, gpu) == expected


def test_a_network_variable_the_user_set_wins() -> None:
    environ = {"NCCL_SOCKET_IFNAME": "ens5"}
    set_network_env(Cluster(tuple(HOSTS), HOSTS[0], "eth0", "ml.p5.48xlarge"), True, environ)
    assert environ["NCCL_SOCKET_IFNAME"] == "ens5" and environ["FI_PROVIDER"] == "efa"


def test_the_rendezvous_is_the_first_host_and_each_host_watches_the_next_ports() -> None:
    cluster = Cluster(("127.0.0.1", "127.0.0.2", "127.0.0.3"), "127.0.0.2", "lo")
    meet = rendezvous(cluster, 7777)
    assert (meet.master, meet.port, meet.node_rank, meet.nodes, meet.address) == ("127.0.0.1", 7777, 1, 3, "127.0.0.2")
    assert meet.watch_port == 7779
    assert meet.peers == (("127.0.0.1", "127.0.0.1", 7778), ("127.0.0.3", "127.0.0.3", 7780))
