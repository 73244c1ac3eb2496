"""The released CIFAR-10-C / CIFAR-100-C layout: reader, validation and writer.

A directory holds ``<corruption>.npy`` (uint8, (5n, 32, 32, 3): severities 1..5 stacked in blocks of
n images in test-set order), ``labels.npy`` ((5n,) integers: the test labels repeated five times)
and, for sets auxtune made, ``manifest.json`` (how they were made; written last, so a directory
without it is an interrupted run). The released sets have n = 10,000.

    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> _ = write_labels(root, np.array([3, 1]))
    >>> _ = write_corruption(root, "fog", np.zeros((10, 32, 32, 3), np.uint8))
    >>> suite = CorruptedTestSet(root)
    >>> suite.corruptions, suite.block_size, suite.images("fog", 5).shape, suite.labels(5).tolist()
    (('fog',), 2, (2, 32, 32, 3), [3, 1])
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from auxtune.data._files import save_json, save_npy
from auxtune.errors import DataError

SEVERITIES = (1, 2, 3, 4, 5)
LABELS_FILE = "labels.npy"
MANIFEST_FILE = "manifest.json"
IMAGE_SHAPE = (32, 32, 3)


class CorruptedTestSet:
    """A validated CIFAR-C directory, memory-mapped and read one (corruption, severity) at a time.

    ``skip_first`` drops the first images of every severity block (the ``paper`` protocol trains its
    meta-validation on them) and ``first_k`` keeps only the next k of each block (quick evaluation;
    0 keeps all). ``expected_labels`` (the base test set's labels) are checked against
    ``labels.npy``; ``required`` corruptions must all be present.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        expected_labels: np.ndarray | None = None,
        required: Sequence[str] = (),
        skip_first: int = 0,
        first_k: int = 0,
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"corrupted test set {self.root} is not a directory")
        full = _read_labels(self.root / LABELS_FILE, expected_labels)
        self.block_size = len(full) // len(SEVERITIES)
        self._block_labels = full[: self.block_size]
        self._arrays = {
            path.stem: _open_images(path, len(full))
            for path in sorted(self.root.glob("*.npy"))
            if path.name != LABELS_FILE
        }
        if not self._arrays:
            raise DataError(_no_images_message(self.root))
        missing = [self.root / f"{name}.npy" for name in required if name not in self._arrays]
        if missing:
            raise DataError(f"{missing[0]} does not exist (required: {', '.join(required)})")
        self.manifest = read_manifest(self.root)
        made = list((self.manifest or {}).get("corruptions", []))  # make-c's order, if it made them
        rank = {name: i for i, name in enumerate([*required, *made])}
        self.corruptions: tuple[str, ...] = tuple(
            sorted(self._arrays, key=lambda name: (rank.get(name, len(rank)), name))
        )
        self._skip, self._keep = 0, 0
        self._set_slice(skip_first, first_k)

    def subset(
        self, *, skip_first: int | None = None, first_k: int | None = None
    ) -> CorruptedTestSet:
        """The same files with another per-block slice (arguments left out are kept)."""
        view = copy.copy(self)
        view._set_slice(
            self._skip if skip_first is None else skip_first,
            self._keep if first_k is None else first_k,
        )
        return view

    def _set_slice(self, skip_first: int, first_k: int) -> None:
        if skip_first < 0 or first_k < 0 or skip_first >= self.block_size:
            raise DataError(
                f"{self.root}: cannot skip {skip_first} and keep {first_k or 'all'} images of "
                f"blocks of {self.block_size}"
            )
        self._skip, self._keep = skip_first, first_k

    @property
    def images_per_block(self) -> int:
        """How many images of every (corruption, severity) block :meth:`images` returns."""
        rest = self.block_size - self._skip
        return min(self._keep, rest) if self._keep else rest

    def images(self, corruption: str, severity: int) -> np.ndarray:
        """uint8 (k, 32, 32, 3): the sliced block of ``corruption`` at ``severity`` (1..5)."""
        if corruption not in self._arrays:
            raise DataError(
                f"{self.root} has no {corruption}.npy; present: {', '.join(self.corruptions)}"
            )
        start = (_check_severity(severity) - 1) * self.block_size + self._skip
        return np.ascontiguousarray(self._arrays[corruption][start : start + self.images_per_block])

    def labels(self, severity: int = 1) -> np.ndarray:
        """int64 (k,): labels of the sliced block (the same for every severity)."""
        _check_severity(severity)
        return self._block_labels[self._skip : self._skip + self.images_per_block].copy()

    def __repr__(self) -> str:
        return (
            f"CorruptedTestSet({str(self.root)!r}, {len(self.corruptions)} corruptions, "
            f"{self.images_per_block} of {self.block_size} images per block)"
        )


def _check_severity(severity: int) -> int:
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {SEVERITIES}")
    return severity


def _read_labels(path: Path, expected: np.ndarray | None) -> np.ndarray:
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: a CIFAR-C directory needs the labels of its images"
        )
    labels = _load(path)
    n = len(labels) // len(SEVERITIES)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or n == 0 or len(labels) % 5:
        raise DataError(
            f"{path} is {labels.dtype} {labels.shape}; expected integers of shape (5n,): the test "
            "labels repeated for severities 1..5"
        )
    labels = np.asarray(labels, dtype=np.int64)
    blocks = labels.reshape(len(SEVERITIES), n)
    if not (blocks == blocks[0]).all():
        raise DataError(f"{path}: the five severity blocks of {n} labels differ; expected repeats")
    if expected is not None:
        expected = np.asarray(expected)
        if expected.shape != (n,) or not np.array_equal(blocks[0], expected):
            raise DataError(
                f"{path} does not match the test set: its blocks hold {n} labels, the test set has "
                f"{len(expected)}" + ("" if expected.shape != (n,) else " with different values")
            )
    return labels


def _open_images(path: Path, rows: int) -> np.ndarray:
    array = _load(path, mmap_mode="r")
    if array.dtype != np.uint8 or array.shape != (rows, *IMAGE_SHAPE):
        raise DataError(
            f"{path} is {array.dtype} {array.shape}; expected uint8 {(rows, *IMAGE_SHAPE)} "
            f"(5 severities x {rows // 5} images, like {LABELS_FILE})"
        )
    return array


def _load(path: Path, mmap_mode: Any = None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable .npy array: {err}") from err


def _no_images_message(root: Path) -> str:
    if any(root.glob("*.parquet")) or any(root.glob("*/*.parquet")):
        return (
            f"{root} holds Parquet files, not the .npy layout; point data.corruptions_dir at the "
            ".npy directory (`auxtune data make-c --format npy`)"
        )
    return f"{root} holds no <corruption>.npy files (expected the CIFAR-10-C layout)"


# ------------------------------------------------------------------------------------- writer
def write_corruption(root: str | Path, corruption: str, images: np.ndarray) -> Path:
    """Save one corruption's severity blocks, uint8 (5n, 32, 32, 3), atomically."""
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE or len(images) % 5:
        raise ValueError(
            f"{corruption}: got {images.dtype} {images.shape}, need uint8 (5n, 32, 32, 3)"
        )
    path = Path(root) / f"{corruption}.npy"
    save_npy(path, images)
    return path


def write_labels(root: str | Path, labels: np.ndarray) -> Path:
    """Save the test labels repeated for severities 1..5 (uint8, like the release, if they fit)."""
    labels = np.asarray(labels)
    dtype = np.uint8 if labels.size and labels.min() >= 0 and labels.max() < 256 else np.int64
    path = Path(root) / LABELS_FILE
    save_npy(path, np.tile(labels.astype(dtype), len(SEVERITIES)))
    return path


def write_manifest(root: str | Path, manifest: dict[str, Any]) -> Path:
    path = Path(root) / MANIFEST_FILE
    save_json(path, manifest)
    return path


def read_manifest(root: str | Path) -> dict[str, Any] | None:
    """``manifest.json`` of a set auxtune made, or None (the released sets have none)."""
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict):
        raise DataError(f"{path} must hold a JSON object")
    return manifest
