"""What this machine must offer a run, checked before the run's work starts.

The config layer checks what a value may be anywhere; these checks need the machine the work runs
on: the device (``runtime.device=cuda:7`` on a CPU laptop), the data files a config points at
(``data.corruptions_dir``, the CIFAR layout, a writable synthetic cache) and how many CPUs there are
(``runtime.threads``, ``search.cpus_per_trial``). ``auxtune train`` calls :func:`check_run_here`;
a search that computes on this machine calls the same, a search on a cluster only
:func:`check_data` (its trials run on other nodes, whose devices the driver cannot see).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from auxtune.errors import DataError, UserError
from auxtune.platform.config import ExperimentConfig
from auxtune.platform.outputs import check_writable
from auxtune.robust.config import EMBEDDED_DATASETS, DataConfig
from auxtune.robust.device import available_cpus

_DEVICE = re.compile(r"auto|cpu|cuda|cuda:(\d+)")


def check_run_here(exp: ExperimentConfig) -> list[str]:
    """Check the device and data of a run computed on this machine; return notes to print."""
    check_device(exp.runtime.device)
    check_data(exp.data)
    threads, cpus = exp.runtime.threads, available_cpus()
    if threads > cpus:
        return [
            f"note: runtime.threads = {threads} but this machine has {cpus} CPUs: using {cpus} "
            "torch threads"
        ]
    return []


def check_device(name: str, what: str = "runtime.device") -> None:
    """Refuse a device this machine lacks (``what`` names where ``name`` came from).

    >>> check_device("cpu")
    >>> check_device("tpu", "--device")
    Traceback (most recent call last):
    ...
    auxtune.errors.UserError: --device 'tpu': choose auto, cpu, cuda or cuda:N
    """
    import torch

    given = f"{what} {name!r}" if what.startswith("--") else f"{what} = {name!r}"
    match = _DEVICE.fullmatch(name)
    if match is None:
        raise UserError(f"{given}: choose auto, cpu, cuda or cuda:N")
    if not name.startswith("cuda"):
        return
    if not torch.cuda.is_available():
        raise UserError(
            f"{given} but this machine has no CUDA device; use auto (CUDA when present) or cpu"
        )
    count, index = torch.cuda.device_count(), int(match.group(1) or 0)
    if index >= count:
        raise UserError(
            f"{given} but this machine has {count} CUDA devices (cuda:0..cuda:{count - 1})"
        )


def check_data(cfg: DataConfig) -> None:
    """The files ``cfg`` points at exist, and the embedded data's cache can be written.

    Only presence and layout are checked here (cheap); a malformed file is reported, naming it,
    when it is read.
    """
    if cfg.dataset in EMBEDDED_DATASETS:
        from auxtune.data.synthetic import cache_dir

        where = "data.data_dir" if cfg.data_dir else "the embedded data's cache ($AUXTUNE_CACHE)"
        check_writable(cache_dir(cfg.data_dir), where, directory=True)
    elif not cfg.download:
        from auxtune.data.cifar import check_layout

        check_layout(cfg.dataset, cfg.data_dir)
    if cfg.corruptions_dir:
        _check_corruptions_dir(cfg)


def _check_corruptions_dir(cfg: DataConfig) -> None:
    from pathlib import Path

    from auxtune.data.cifar_c import CorruptedTestSet

    root = Path(cfg.corruptions_dir or "").expanduser()
    if not root.is_dir():
        raise DataError(
            f"data.corruptions_dir {root} does not exist (expected a CIFAR-C directory: "
            "<corruption>.npy and labels.npy)"
        )
    suite = CorruptedTestSet(root)  # validates the layout (memory-mapped, reads no images)
    if cfg.c_images_per_block > suite.block_size:
        raise DataError(
            f"data.c_images_per_block = {cfg.c_images_per_block} but {root} has blocks of "
            f"{suite.block_size} images; use at most that, or 0 for all"
        )


def trial_threads(cpus_per_trial: float, machine_cpus: int) -> tuple[int, str | None]:
    """Torch threads of each trial: ``search.cpus_per_trial`` rounded down (at least 1), but never
    more than ``machine_cpus``; the second item says so when it clamped (print it), else None.

    The rule is clamp, not refuse: a config written for a 64-core node still runs on a laptop,
    computing the same numbers, only without starting 64 threads on 2 cores (~10x slower).

    >>> trial_threads(1.0, 2)
    (1, None)
    >>> trial_threads(64, 2)[0]
    2
    """
    wanted = max(1, int(cpus_per_trial))
    threads = min(wanted, max(1, machine_cpus))
    if threads == wanted:
        return threads, None
    return threads, (
        f"note: search.cpus_per_trial = {cpus_per_trial:g} but this machine has {machine_cpus} "
        f"CPUs: each trial computes with {threads} torch threads (more would only make them "
        "wait for each other)"
    )


@contextlib.contextmanager
def memory_errors_as_user_errors() -> Iterator[None]:
    """Turn running out of memory (CPU allocator or CUDA) into one :class:`UserError` line: the
    model or batch a config asks for does not fit this machine, which only trying reveals."""
    import torch

    try:
        yield
    except RuntimeError as err:  # torch.OutOfMemoryError is a RuntimeError too
        text = str(err)
        if not isinstance(err, torch.OutOfMemoryError) and "can't allocate memory" not in text:
            raise
        size = re.search(r"allocate ([\d.]+ ?[KMGT]?i?B|\d+ bytes)", text)
        asked = f" (it asked for {size.group(1)})" if size else ""
        raise UserError(
            f"out of memory{asked}: the model or batch does not fit this machine; lower "
            "model.widen_factor, model.depth or optim.batch_size"
        ) from None
