"""Advisory file locks between the processes that share a workdir (``fcntl.flock``).

The kernel releases a lock when its holder dies, SIGKILL included, so a lock never outlives the
driver that took it: a lock that can be taken means nobody is using what it guards.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp(), "x.lock")
    >>> with file_lock(path):
    ...     try_lock(path) is None  # held: a second taker is refused
    True
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock ``path`` for the block, waiting for it if another process has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def try_lock(path: Path) -> int | None:
    """Take the exclusive lock ``path`` without waiting: its descriptor (close it to release),
    or None when another holder has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


__all__ = ["file_lock", "try_lock"]
