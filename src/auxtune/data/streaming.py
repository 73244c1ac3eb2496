"""Evaluate a checkpoint on a Parquet corrupted test set with Ray Data, streaming.

    read_parquet -> filter(index) -> map_batches(BlockAccuracy actors) -> (corruption, severity) counts

Each actor loads the checkpoint once and returns, per batch, how many images of each
(corruption, severity) it classified correctly, so only a few rows per batch travel back to the
driver. With GPUs the default is one actor per GPU; on CPUs, one actor running torch on every core
of a node (one model copy, each batch in one forward pass, like the in-memory loop). When that one
CPU actor would run on this very machine (a one-node cluster), this process plays the actor: Ray
Data still reads and filters the files in its own tasks and streams the batches here, and the
evaluation is spared the actor's start-up (a new process importing torch), which on 2 cores was the
largest cost besides the forward passes (see ``benchmarks/stream_eval.py``); its files are then
read one task at a time, which keeps up with the model and leaves it the cores. Ray is started here
only when it is not running, and shut down only if started here.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auxtune.data.parquet import check_readable, images_from_arrow, parquet_files, read_rows
from auxtune.errors import UserError
from auxtune.ray_connect import init_local

if TYPE_CHECKING:
    import pyarrow as pa

    from auxtune.data.evaluation import CorruptionReport

READ_CPUS = 0.5  # Ray CPUs per Parquet read task: decoding is cheap next to the forward pass


class BlockAccuracy:
    """Ray Data actor: the model of ``checkpoint`` counting correct predictions in each batch."""

    def __init__(self, checkpoint: str, device: str, threads: int) -> None:
        import torch

        from auxtune.data.evaluation import load_for_inference

        if threads:
            torch.set_num_threads(min(threads, os.cpu_count() or threads))
        self.device = torch.device(device)
        self.model, self.autocast, self.fmt = load_for_inference(checkpoint, self.device)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        from auxtune.robust.trainer import predict

        images = images_from_arrow(batch.column("image"))
        predicted = predict(self.model, images, self.device, len(images), self.autocast, self.fmt)
        hits = predicted.cpu().numpy() == batch.column("label").to_numpy()
        counts = pa.table(
            {
                "corruption": batch.column("corruption"),
                "severity": batch.column("severity"),
                "correct": hits.astype(np.int64),
            }
        )
        return counts.group_by(["corruption", "severity"]).aggregate(
            [("correct", "sum"), ("correct", "count")]
        )


def evaluate_stream(
    checkpoint_path: str | Path,
    parquet_dir: str | Path,
    *,
    batch_size: int = 1024,
    num_actors: int | None = None,
    use_gpu: bool | None = None,
    skip_first: int = 0,
    first_k: int = 0,
    address: str | None = None,
    protocol: str = "standard",
    progress: bool = False,
) -> CorruptionReport:
    """Accuracy of the checkpoint's model on every (corruption, severity) of ``parquet_dir``.

    Of every severity block, images ``skip_first`` .. ``skip_first + first_k - 1`` are evaluated
    (``first_k=0``: all after the skipped ones). ``use_gpu=None`` uses GPUs when the cluster has
    them. ``address`` (``auto``, ``ray://host:10001``) is used only when Ray is not yet running;
    without one a local Ray starts for this call. ``progress`` shows Ray Data's progress bars.
    """
    from auxtune.data.evaluation import summarize

    if (
        batch_size < 1
        or skip_first < 0
        or first_k < 0
        or (num_actors is not None and num_actors < 1)
    ):
        raise UserError(
            f"batch_size ({batch_size}) and num_actors ({num_actors}) must be >= 1, "
            f"skip_first ({skip_first}) and first_k ({first_k}) >= 0"
        )
    files = parquet_files(parquet_dir)
    checkpoint = _checked_checkpoint(checkpoint_path)
    with ray_session(address):
        try:
            correct, total = _count(
                files, checkpoint, batch_size, num_actors, use_gpu, (skip_first, first_k), progress
            )
        except Exception:
            check_readable(files)  # a corrupt page: one line naming the file
            raise
    if not total:
        raise UserError(
            f"{parquet_dir}: no images left after skipping {skip_first} per block "
            f"(first_k={first_k}); the blocks are smaller than that"
        )
    return summarize(correct, total, protocol=protocol, skip_first=skip_first, first_k=first_k)


def _checked_checkpoint(path: str | Path) -> str:
    """Fail on the driver with one clear line, before any actor tries to load it."""
    from auxtune.robust.checkpoint import load_checkpoint

    try:
        load_checkpoint(path)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    return str(Path(path).expanduser().resolve())  # actors may run in another directory


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the running Ray; otherwise start (or connect to) one and shut it down afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    # "local" starts a private instance: without it ray.init joins whatever cluster `ray start`
    # left on this machine (someone else's, perhaps)
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    options: dict[str, Any] = dict(
        include_dashboard=False, ignore_reinit_error=True, log_to_driver=False
    )
    try:
        if address == "local":
            init_local(num_cpus=num_cpus, **options)  # every server on 127.0.0.1
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise UserError(f"cannot start or reach Ray (address={address!r}): {err}") from err
    try:
        yield
    finally:
        ray.shutdown()


def _count(
    files: list[Path],
    checkpoint: str,
    batch_size: int,
    num_actors: int | None,
    use_gpu: bool | None,
    block_rows: tuple[int, int],
    progress: bool,
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """Correct and total images per (corruption, severity), summed over the actors' batches."""
    options = _actor_options(checkpoint, num_actors, use_gpu)
    here = _one_cpu_actor_here(options, num_actors)
    # this process as the one consumer: one read task at a time keeps up with its forward passes
    # (a file takes ~5 ms to read) and leaves the cores to them; every further reader is a
    # worker process whose Ray Data start-up competes with the model (2-3 s of 35 measured)
    ds = _read_per_file(files, block_rows, readers=1 if here else None)
    ds.context.enable_progress_bars = progress
    correct: dict[tuple[str, int], int] = {}
    total: dict[tuple[str, int], int] = {}
    for counts in _counted_batches(ds, checkpoint, batch_size, options, here):
        columns = ("corruption", "severity", "correct_sum", "correct_count")
        for corruption, severity, hits, count in zip(*(counts[c].to_pylist() for c in columns)):
            key = (str(corruption), int(severity))
            correct[key] = correct.get(key, 0) + int(hits)
            total[key] = total.get(key, 0) + int(count)
    return correct, total


def _counted_batches(
    ds: Any, checkpoint: str, batch_size: int, options: dict[str, Any], here: bool
) -> Iterator[pa.Table]:
    """The per-batch counts: from actors, or from this process (``here``) when the pool would be
    one CPU actor on this very machine: there a separate actor adds its start-up and nothing in
    parallel."""
    if here:
        model = BlockAccuracy(checkpoint, "cpu", threads=0)  # this process's torch threads
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
            yield model(batch)
        return
    ds = ds.map_batches(BlockAccuracy, batch_size=batch_size, batch_format="pyarrow", **options)
    yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")


def _read_per_file(
    files: list[Path], block_rows: tuple[int, int], readers: int | None = None
) -> Any:
    """A dataset with one read task, and one block, per Parquet file, the block-row slice pushed
    into the read (row groups outside it are skipped); at most ``readers`` tasks at a time
    (None: as many as the cluster's CPUs allow).

    Not ``ray.data.read_parquet``: Ray 2.60's reader packs row groups into 128 MiB read tasks
    whatever ``override_num_blocks`` says, so a set of that size or less is read whole by one
    task before the model sees a batch, after a file-listing task that needs a whole CPU.
    """
    import ray

    paths = [{"path": str(f)} for f in files]
    return ray.data.from_items(paths, override_num_blocks=len(files)).map_batches(
        functools.partial(_read_files, block_rows=block_rows),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=READ_CPUS,
        concurrency=readers,
    )


def _read_files(batch: pa.Table, block_rows: tuple[int, int]) -> pa.Table:
    """Ray Data task: the rows of the batch's files within every block's slice."""
    return read_rows(batch.column("path").to_pylist(), None, *block_rows)


def _one_cpu_actor_here(options: dict[str, Any], num_actors: int | None) -> bool:
    """The default CPU pool (one actor, not asked for) on a one-node cluster this process is on."""
    import ray

    if num_actors is not None or options["num_gpus"] or ray.util.client.ray.is_connected():
        return False
    nodes = [node for node in ray.nodes() if node["Alive"]]
    return len(nodes) == 1 and nodes[0]["NodeID"] == ray.get_runtime_context().get_node_id()


def _actor_options(checkpoint: str, num_actors: int | None, use_gpu: bool | None) -> dict[str, Any]:
    """The actor pool: one actor per GPU, or one CPU actor with every core's torch threads."""
    import ray
    from ray.data import ActorPoolStrategy

    cpus = ray.cluster_resources().get("CPU", 1.0)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    gpu = gpus > 0 if use_gpu is None else use_gpu
    if gpu and gpus == 0:
        raise UserError("use_gpu=True but the Ray cluster has no GPU")
    actors = num_actors or (gpus if gpu else 1)
    return {
        "fn_constructor_kwargs": {
            "checkpoint": checkpoint,
            "device": "cuda" if gpu else "cpu",
            "threads": 0 if gpu else max(1, int(cpus) // actors),
        },
        "compute": ActorPoolStrategy(size=actors),
        "num_gpus": 1 if gpu else 0,
        # Ray CPUs are a reservation, not a thread limit. The actors together leave one CPU
        # free for the readers (READ_CPUS each);
        # without it the pipeline waits forever (seen with 2 actors of 0.75 CPU on 2 CPUs)
        "num_cpus": min(1.0, max(cpus - 1.0, 0.0) / actors),
    }
