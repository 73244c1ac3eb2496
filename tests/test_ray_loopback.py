"""A local Ray listens on loopback only; an unreachable address is answered in seconds.

Every Ray a command starts on this machine (no ``--address``) must not be reachable from the
network: its GCS, raylet, object manager and worker gRPC servers execute whatever they are sent.
The tests start one, list the listening TCP sockets of this process and all its descendants (the
Ray processes it started) and require each to be bound to a loopback address.

``tests/test_search_hardening.py`` checks the same of ``auxtune search``'s own Ray.
"""

from __future__ import annotations

import ipaddress
import time

import psutil
import pytest

from auxtune.errors import UserError
from auxtune.ray_connect import check_address, init_local

pytestmark = pytest.mark.slow


def listening_addresses() -> list[tuple[str, int, str]]:
    """(ip, port, process name) of every TCP socket this process and its descendants listen on."""
    me = psutil.Process()
    found = []
    for process in [me, *me.children(recursive=True)]:
        try:
            sockets = process.net_connections(kind="inet")
            name = process.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for sock in sockets:
            if sock.status == psutil.CONN_LISTEN:
                found.append((sock.laddr.ip, sock.laddr.port, name))
    return found


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def assert_loopback_only() -> None:
    found = listening_addresses()
    assert len(found) >= 3, f"expected Ray's servers to listen, found {found}"
    exposed = [entry for entry in found if not _is_loopback(entry[0])]
    assert exposed == [], f"listening beyond loopback: {exposed}"


@pytest.fixture
def no_ray():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized(), "another test left Ray running"
    yield ray
    ray.shutdown()


def test_init_local_listens_on_loopback_only_and_runs_tune_and_data(no_ray):
    ray = no_ray
    init_local(num_cpus=2, include_dashboard=False, log_to_driver=False)
    assert_loopback_only()
    # the loopback instance works for what auxtune runs on it: tasks, Ray Data and Tune
    assert ray.get(ray.remote(lambda: 41 + 1).remote()) == 42
    assert ray.data.range(10).map(lambda row: {"id": row["id"] * 2}).sum("id") == 90
    from ray import tune

    def trainable(config):
        tune.report({"score": config["x"] * 2})

    grid = tune.Tuner(trainable, param_space={"x": tune.grid_search([1, 2])}).fit()
    assert sorted(r.metrics["score"] for r in grid) == [2, 4]
    assert_loopback_only()  # Tune's and Data's workers too


def test_evaluate_ray_session_listens_on_loopback_only(no_ray):
    from auxtune.data.streaming import ray_session

    with ray_session(num_cpus=1):
        assert_loopback_only()


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_address_is_answered_in_seconds(address):
    start = time.monotonic()
    with pytest.raises(UserError, match=r"cannot reach the Ray cluster at .*127\.0\.0\.1:1"):
        check_address(address)
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("address", ["somewhere", "host:port", "ray://host", "1.2.3.4:99999"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(UserError, match="is not auto, ray://HOST:PORT or HOST:PORT"):
        check_address(address)
