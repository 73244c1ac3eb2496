"""The Ray side of a run: reach (or start) Ray, check the cluster, size what each trial asks for.

    with library_logs_to("runs/logs/x.log"), ray_session(None, None, quiet=True):
        resources = trial_resources(exp.search, on_cluster=False)

``address=None`` starts a private local Ray for this command; ``"auto"`` or ``HOST:PORT`` joins a
running cluster; ``"ray://HOST:PORT"`` goes through Ray Client. An already initialised Ray (a test
session, a notebook) is reused and left running.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auxtune.errors import UserError


@contextmanager
def ray_session(address: str | None, storage: str | None, *, quiet: bool = False) -> Iterator[bool]:
    """Ray for the duration of the block; yields True when this call started it (and stops it).

    ``quiet``: keep the trials' output off the console and leave the logging of Ray's messages to
    the caller (:func:`library_logs_to`).
    """
    started = connect(address, storage, quiet=quiet)
    try:
        yield started
    finally:
        if started:
            import ray

            ray.shutdown()


#: what a search or comparison without ``--verbose`` sends to its log file instead of the console
LIBRARY_LOGGERS = ("ray", "optuna", "mlflow", "py.warnings")


@contextmanager
def library_logs_to(path: str | Path | None) -> Iterator[None]:
    """Send what the libraries say (the loggers of :data:`LIBRARY_LOGGERS`: Ray's notes and
    warnings, Optuna's "A new study created ...", MLflow's "Creating initial MLflow database
    tables ...", Python warnings) to the file ``path`` for the duration of the block; ``None``
    leaves the console as it is.

    The file's handler sits on the root logger and the library loggers propagate to it with no
    handler of their own: ``ray.init(configure_logging=False)`` clears the "ray" logger's handlers,
    so a handler there was lost and Python's last-resort handler printed Ray's warnings (the
    token-authentication note, Tune's "Remote file not found") on the console.
    """
    if path is None:
        yield
        return
    # each library sets its logger up when first imported: now, for the block to take it over
    import mlflow  # noqa: F401
    import optuna.logging  # noqa: F401
    import ray  # noqa: F401

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    saved = [(lg.handlers[:], lg.propagate, lg.level) for lg in loggers]
    logging.captureWarnings(True)
    root.addHandler(handler)
    for lg in loggers:
        lg.handlers, lg.propagate = [], True
        lg.setLevel(logging.INFO)
    try:
        yield
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        for lg, (handlers, propagate, level) in zip(loggers, saved):
            lg.handlers, lg.propagate = handlers, propagate
            lg.setLevel(level)
        handler.close()


def connect(address: str | None, storage: str | None, *, quiet: bool = False) -> bool:
    """Initialise Ray; True when this call started it (and so must shut it down).

    A cluster of several nodes needs ``storage`` (``tracking.storage``): see :func:`check_storage`.
    ``quiet``: leave the logging set up by the caller alone and keep the workers' output off the
    console (it stays in Ray's session logs).
    """
    import ray

    from auxtune.ray_connect import check_address, init_local

    if address is not None:
        check_address(address)
    started = not ray.is_initialized()
    if started and address is None:  # a private Ray, every one of its servers on 127.0.0.1
        init_local(
            num_cpus=os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=not quiet,
            configure_logging=not quiet,
        )
    elif started:
        try:
            ray.init(address=address, log_to_driver=not quiet, configure_logging=not quiet)
        except (ConnectionError, TimeoutError, OSError, RuntimeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise UserError(f"cannot connect to the Ray cluster at {address}: {first}") from None
    try:
        check_storage(storage)
    except UserError:
        if started:
            ray.shutdown()
        raise
    return started


def check_storage(storage: str | None) -> None:
    """Refuse a multi-node cluster without ``tracking.storage``: Tune's default results directory
    is on the driver's disk, which trials on other nodes cannot write their checkpoints to."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and not storage:
        raise UserError(
            f"the Ray cluster has {len(nodes)} nodes but no shared results storage: pass "
            "--storage s3://BUCKET/PATH or a directory every node mounts (tracking.storage)"
        )


@dataclass(frozen=True)
class TrialResources:
    """What each trial asks Ray for, how many may run at once, and its torch threads."""

    request: dict[str, float]  # Ray resources per trial ({"cpu": 0.5, "gpu": 0.25})
    max_concurrent: int | None  # None: as many as the cluster's resources allow
    threads: int  # torch intra-op threads of each trial


def trial_resources(search: Any, on_cluster: bool, *, together: int = 0) -> TrialResources:
    """Size the trials of a search from ``search`` (``cpus_per_trial``, ``gpus_per_trial``,
    ``max_concurrent``) and the Ray cluster's resources.

    On this machine's own Ray, trials fill its CPUs less one logical CPU left free (Ray Data and
    Tune's own tasks need it: PLATFORM_NOTES' 2-CPU deadlock). On a cluster (``--address``) each
    trial asks exactly its share and only ``search.max_concurrent`` caps the concurrency: pending
    trials are what makes the autoscaler add worker nodes.

    ``together``: a population of that many trials must make progress together (synchronous PBT
    decides only when every member reached the interval). No concurrency cap is set, so every
    member exists from the start and Tune's synchronous PBT waits for all of them (with a cap, the
    first members met and exploited each other before the others were created). On this machine
    a population that fits runs at once; a larger one asks a whole slot per member, so that as
    many members train at a time as the CPUs have slots and the others wait paused. (Running a
    population of 4 at once on 2 cores, the demo's PBT search took 87 s against 66 s time-shared:
    every member re-imported torch in a new actor after every meeting.)
    """
    import ray

    from auxtune.platform.preflight import trial_threads

    share, gpu = search.cpus_per_trial, search.gpus_per_trial
    cluster = ray.cluster_resources()
    cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
    threads = max(1, int(share))  # on a cluster each trial clamps to its own node's CPUs
    if not on_cluster:
        threads, note = trial_threads(share, int(cpus))
        if note:
            print(note, file=sys.stderr)
    if on_cluster:
        if gpu > 0 and gpus < gpu:
            print(
                f"note: the Ray cluster has {gpus:g} GPUs now; trials asking for {gpu:g} wait until "
                "the autoscaler adds GPU nodes",
                file=sys.stderr,
            )
        cap = None if together else (search.max_concurrent or None)
        return TrialResources({"cpu": share, **({"gpu": gpu} if gpu > 0 else {})}, cap, threads)
    concurrency = search.max_concurrent or max(1, int(cpus // share))
    if gpu > 0:
        if gpus < gpu:
            raise UserError(
                f"--gpus-per-trial {gpu} but the Ray cluster has {gpus:g} GPUs; use 0 for CPU trials"
            )
        concurrency = min(concurrency, int(gpus // gpu + 1e-9))
    if together > concurrency:  # time-shared: `concurrency` members train at a time
        request = cpus / concurrency
    else:
        concurrency = together or concurrency
        # ask a little less than the share so one logical CPU stays free for Ray Data / others
        floor = 0.01 if together else min(share, 0.5)
        request = max(min(share, (cpus - 1) / concurrency), floor)
    resources = {"cpu": round(request, 3)}
    if gpu > 0:
        resources["gpu"] = gpu
    return TrialResources(resources, None if together else concurrency, threads)
