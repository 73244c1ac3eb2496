"""Evaluate a checkpoint on a Parquet corrupted test set with Ray Data, streaming.

    read_parquet -> filter(index) -> map_batches(BlockAccuracy actors) -> (corruption, severity) counts

Each actor loads the checkpoint once and returns, per batch, how many images of each
(corruption, severity) it classified correctly, so only a few rows per batch travel back to the
driver. On CPUs the default is one actor running torch on every core of the node (one model copy,
each batch in one forward pass, like the in-memory loop); with GPUs, one actor per GPU. Ray is
started here only when it is not running, and shut down only if started here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auxtune.data.parquet import images_from_arrow, parquet_files
from auxtune.errors import UserError

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
        correct, total = _count(
            files, checkpoint, batch_size, num_actors, use_gpu, (skip_first, first_k), progress
        )
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
    try:
        ray.init(
            address=address,
            num_cpus=num_cpus if address == "local" else None,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
        )
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
    import ray

    # a block per file: the actors start on the first file while the others are still read
    ds = ray.data.read_parquet(
        [str(f) for f in files], num_cpus=READ_CPUS, override_num_blocks=len(files)
    )
    ds.context.enable_progress_bars = progress
    predicate = _block_rows_predicate(*block_rows)
    if predicate is not None:
        ds = ds.filter(expr=predicate)
    ds = ds.map_batches(
        BlockAccuracy,
        batch_size=batch_size,
        batch_format="pyarrow",
        **_actor_options(checkpoint, num_actors, use_gpu),
    )
    correct: dict[tuple[str, int], int] = {}
    total: dict[tuple[str, int], int] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        columns = ("corruption", "severity", "correct_sum", "correct_count")
        for corruption, severity, hits, count in zip(*(batch[c] for c in columns)):
            key = (str(corruption), int(severity))
            correct[key] = correct.get(key, 0) + int(hits)
            total[key] = total.get(key, 0) + int(count)
    return correct, total


def _block_rows_predicate(skip_first: int, first_k: int) -> Any:
    """Rows ``skip_first <= index < skip_first + first_k`` (no end when ``first_k`` is 0)."""
    from ray.data.expressions import col

    predicate = col("index") >= skip_first if skip_first else None
    if first_k:
        end = col("index") < skip_first + first_k
        predicate = end if predicate is None else predicate & end
    return predicate


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
        # free: Ray Data's file-listing task needs a whole one and the readers READ_CPUS each;
        # without it the pipeline waits forever (seen with 2 actors of 0.75 CPU on 2 CPUs)
        "num_cpus": min(1.0, max(cpus - 1.0, 0.0) / actors),
    }
