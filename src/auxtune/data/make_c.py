"""Write a corrupted test set in the released CIFAR-C layout for any base test set.

Every (corruption, severity) block draws from its own random stream (``corrupt`` derives it from
``seed``, the corruption's name and the severity), so a subset of corruptions reproduces the full
run's blocks. Each file is written atomically and ``manifest.json`` last: a directory without a manifest is an
interrupted run, and the manifest records how the set was made (the released sets cannot be
regenerated: the original script was never seeded).

    >>> import tempfile
    >>> from auxtune.data.synthetic import make_synthetic
    >>> images, labels = make_synthetic(10, seed=0)
    >>> out = make_c(images, labels, tempfile.mkdtemp(), corruptions=["fog"], progress=False)
    >>> sorted(p.name for p in out.iterdir())
    ['fog.npy', 'labels.npy', 'manifest.json']
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import auxtune
from auxtune.data.cifar_c import (
    IMAGE_SHAPE,
    MANIFEST_FILE,
    SEVERITIES,
    write_corruption,
    write_labels,
    write_manifest,
)
from auxtune.errors import DataError

FORMATS = ("npy", "parquet")
MANIFEST_FORMAT = "auxtune-cifar-c/1"


def check_corruptions(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` validated against the corruption registry (unknown ones raise DataError)."""
    from auxtune.data.corruptions import CORRUPTIONS

    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown or not names:
        problem = f"unknown corruption {unknown[0]!r}" if unknown else "no corruption given"
        raise DataError(f"{problem}; valid corruptions: {', '.join(CORRUPTIONS)}")
    return tuple(dict.fromkeys(names))


def make_c(
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: str | Path,
    *,
    corruptions: Sequence[str] | None = None,
    seed: int = 0,
    fmt: str = "npy",
    progress: bool = True,
    base: str = "custom",
    device: str = "cpu",
) -> Path:
    """Corrupt uint8 ``images`` (n, 32, 32, 3) at severities 1..5 and write them under ``out_dir``.

    ``corruptions`` defaults to all 19 (the 15 standard and the 4 extra). ``fmt="parquet"`` writes
    through :func:`auxtune.data.parquet.write_parquet_from_arrays` instead of ``.npy`` files.
    ``base`` names the base test set in the manifest. ``device`` (cpu, cuda, auto) is where the
    corruptions run: CUDA is much faster, but its random draws differ from the CPU's, so the
    manifest records it. Returns ``out_dir`` as a Path.
    """
    import torch
    from tqdm.auto import tqdm

    from auxtune.data.corruptions import CORRUPTIONS, corrupt
    from auxtune.robust.device import resolve_device

    names = check_corruptions(CORRUPTIONS if corruptions is None else corruptions)
    images, labels = check_base(images, labels)
    if fmt not in FORMATS:
        raise DataError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    try:
        on_device = torch.from_numpy(images).to(resolve_device(device))
    except (RuntimeError, ValueError) as err:
        raise DataError(f"device {device!r}: {err}") from err
    out = Path(out_dir).expanduser()
    _refuse_foreign_files(out, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST_FILE).unlink(missing_ok=True)  # until the new one lands, the set is incomplete
    n = len(images)
    if fmt == "npy":
        write_labels(out, labels)
    with tqdm(total=len(names) * len(SEVERITIES), disable=not progress, unit="block") as bar:
        for name in names:
            blocks = np.empty((len(SEVERITIES) * n, *IMAGE_SHAPE), np.uint8)
            for severity in SEVERITIES:
                bar.set_description(f"{name} s{severity}")
                start = (severity - 1) * n
                corrupted = corrupt(on_device, name, severity, seed=seed)
                blocks[start : start + n] = corrupted.cpu().numpy()
                bar.update()
            _write(out, fmt, name, blocks, labels)
    write_manifest(out, _manifest(names, seed, fmt, base, n, on_device.device))
    return out


def _refuse_foreign_files(out: Path, names: tuple[str, ...]) -> None:
    """Readers take every ``<corruption>.npy`` present: never mix in files of another run."""
    foreign = sorted(p.name for p in out.glob("*.npy") if p.stem not in (*names, "labels"))
    if foreign:
        raise DataError(
            f"{out} already holds {', '.join(foreign)} from another run, which this run would not "
            "replace; write into an empty directory (or include those corruptions)"
        )


def check_base(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The base test set as uint8 (n, 32, 32, 3) images and int64 labels, or :class:`DataError`."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"base images are {images.dtype} {images.shape}; need uint8 (n, 32, 32, 3)")
    if len(images) == 0 or labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise DataError(
            f"base labels are {labels.dtype} {labels.shape}; need integers ({len(images)},), "
            "one per image, and at least one image"
        )
    return images, labels.astype(np.int64)


def _write(out: Path, fmt: str, name: str, blocks: np.ndarray, labels: np.ndarray) -> None:
    if fmt == "npy":
        write_corruption(out, name, blocks)
        return
    from auxtune.data.parquet import write_parquet_from_arrays

    n = len(labels)
    severities = np.repeat(np.array(SEVERITIES, np.int64), n)
    write_parquet_from_arrays(out, name, blocks, np.tile(labels, len(SEVERITIES)), severities)


def _manifest(
    names: tuple[str, ...], seed: int, fmt: str, base: str, n: int, device: Any
) -> dict[str, Any]:
    import torch

    return {
        "format": MANIFEST_FORMAT,
        "file_format": fmt,
        "base_dataset": base,
        "n": n,
        "severities": list(SEVERITIES),
        "corruptions": list(names),
        "seed": seed,
        "device": device.type,  # CUDA and CPU draw different random numbers from the same seed
        "parameters": _parameters(names),
        "auxtune_version": auxtune.__version__,
        "numpy_version": np.__version__,
        "torch_version": torch.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _parameters(names: tuple[str, ...]) -> dict[str, Any]:
    """Per-corruption, per-severity parameters (named tuples in the registry, dicts here)."""
    from auxtune.data.corruptions import corruption_parameters

    return {c: {str(s): corruption_parameters(c, s)._asdict() for s in SEVERITIES} for c in names}
