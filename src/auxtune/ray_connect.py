"""How auxtune reaches Ray: a local instance bound to loopback, and a quick probe of an address.

**Loopback.** On Linux a local ``ray.init()`` binds its GCS, raylet, object manager and worker
gRPC servers to every interface (``*:port``, measured with ``ss -ltnp`` on Ray 2.60), so anyone on
the network can reach a cluster that executes whatever it is sent. Ray binds them to 127.0.0.1
only when the node's IP is the loopback address, and it chooses that itself only on macOS and
Windows: on Linux ``ray.init(_node_ip_address="127.0.0.1")`` is rewritten to the machine's
routable IP (``services.resolve_ip_for_localhost``). :func:`init_local` starts the local instance
the way Ray does on those systems, so everything it starts listens on 127.0.0.1 only.

**Probe.** ``ray.init("HOST:PORT")`` or ``"ray://HOST:PORT"`` with nothing listening retries for
minutes; :func:`check_address` answers in seconds with one line.

**Failures.** Ray Data logs a failed task with its whole internal stack on the console before it
raises; where auxtune reports the failure itself, :func:`ray_data_failures_to_log_file` keeps that
report in Ray Data's log file only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

from auxtune.errors import UserError

CONNECT_TIMEOUT_S = 5.0


def init_local(**init_kwargs: Any) -> Any:
    """``ray.init(address="local", **init_kwargs)`` with every server of the new instance bound to
    127.0.0.1; returns what ``ray.init`` returns. The caller shuts it down (``ray.shutdown()``).

    Nodes of this instance cannot be joined from other machines: that is the point. A cluster is
    started with ``ray start`` and reached with ``--address``.
    """
    import ray
    from ray._private import ray_constants  # the switch Ray itself flips on macOS / Windows

    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False  # the node IP becomes the loopback address
    try:
        return ray.init(address="local", **init_kwargs)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled  # only the node's choice of IP reads it


def check_address(address: str, what: str = "--address") -> None:
    """Fail in seconds (not minutes) when nothing listens at ``[ray://]HOST:PORT``.

    ``auto`` (the cluster ``ray start`` left on this machine) is left to ``ray.init``, which
    answers at once when there is none.

    >>> check_address("auto")
    >>> check_address("somewhere")
    Traceback (most recent call last):
    ...
    auxtune.errors.UserError: --address 'somewhere' is not auto, ray://HOST:PORT or HOST:PORT
    """
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {address!r} is not auto, ray://HOST:PORT or HOST:PORT")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        raise UserError(
            f"cannot reach the Ray cluster at {address} ({err.strerror or err}); is it running "
            "(`ray start --head`) and is the port open?"
        ) from None


class _ErrorsOff(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


@contextlib.contextmanager
def ray_data_failures_to_log_file() -> Iterator[None]:
    """Within the block, Ray Data's ERROR records (a failed task, with its stack) go to its log
    file (``/tmp/ray/session_*/logs/ray-data/``) but not to the console; warnings still show.
    Use it only where the caller turns the exception that follows into its own message."""
    import ray.data  # noqa: F401  (configures the "ray.data" logger and its handlers)

    consoles = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if isinstance(handler, logging.StreamHandler)
        and not isinstance(handler, logging.FileHandler)
    ]
    errors_off = _ErrorsOff()
    for handler in consoles:
        handler.addFilter(errors_off)
    try:
        yield
    finally:
        for handler in consoles:
            handler.removeFilter(errors_off)
