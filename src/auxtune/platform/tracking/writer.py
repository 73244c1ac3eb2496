"""The driver's MLflow writer: one daemon thread running queued writes in order, so Tune's hooks
only queue (a trial waits while the driver handles its result). A failed write is reported once
and the search goes on; every write's wall and CPU seconds are summed into the ledger's state
(``logging_s``, ``logging_cpu_s``, by operation), what logging takes away from the trials.
"""

from __future__ import annotations

import atexit
import queue
import sys
import threading
import time
from typing import Any

from auxtune.platform.tracking.ledger import SearchState

WRITE_EVERY_S = 30.0  # a run's metrics are written at most this often (several epochs per write)


class HookTimer:
    """Adds the seconds of a ``with`` block to ``state.data[key]`` (the hooks' ``hook_s``)."""

    def __init__(self, state: SearchState, key: str) -> None:
        self.state, self.key = state, key

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        data = self.state.data
        data[self.key] = data.get(self.key, 0.0) + time.perf_counter() - self.start


class Writer:
    """One daemon thread running queued MLflow writes in order; errors are reported, not raised.

    ``idle()`` runs whenever the queue has been empty for ``WRITE_EVERY_S`` (buffered metrics
    of quiet trials get written).
    """

    def __init__(self, state: SearchState, idle: Any = None) -> None:
        self.state = state
        self.idle = idle
        self.queue: queue.Queue[Any] = queue.Queue()
        self.warned = False
        self.thread = threading.Thread(target=self._loop, name="auxtune-mlflow", daemon=True)
        self.thread.start()
        self.put(_warm_up)  # one-time imports, while the first trials start
        atexit.register(self.drain)

    def put(self, fn: Any, *args: Any) -> None:
        self.queue.put((fn, args))

    def drain(self) -> None:
        if self.thread.is_alive():
            self.queue.join()

    def _loop(self) -> None:
        while True:
            try:
                fn, args = self.queue.get(timeout=WRITE_EVERY_S)
            except queue.Empty:
                if self.idle is not None:
                    self._run(self.idle, ())
                continue
            try:
                self._run(fn, args)
            finally:
                self.queue.task_done()

    def _run(self, fn: Any, args: tuple[Any, ...]) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        try:
            fn(*args)
        except Exception as err:  # MLflow trouble must not stop the search
            if not self.warned:
                print(
                    f"auxtune: MLflow logging failed ({err!r}); the search goes on",
                    file=sys.stderr,
                )
                self.warned = True
        finally:
            # wall seconds include waits for the CPU (the trials share it) and for the disk;
            # the thread's CPU seconds are what logging takes away from the trials
            seconds, cpu_seconds = time.perf_counter() - start, time.thread_time() - start_cpu
            data = self.state.data
            data["logging_s"] = data.get("logging_s", 0.0) + seconds
            data["logging_cpu_s"] = data.get("logging_cpu_s", 0.0) + cpu_seconds
            op = getattr(fn, "__name__", "other").strip("_")
            for key, value in (("logging_by_op", seconds), ("logging_cpu_by_op", cpu_seconds)):
                by_op = data.setdefault(key, {})
                by_op[op] = by_op.get(op, 0.0) + value


def _warm_up() -> None:
    """Import what the writer needs once (timed as op ``warm_up``, apart from per-trial work)."""
    import mlflow.entities  # noqa: F401
