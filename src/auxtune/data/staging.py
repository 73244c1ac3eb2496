"""Corrupted test sets staged as Parquet on the storage every node of a cluster shares.

Trials of a search or retrain run on any node; a CIFAR-C directory on the head's disk does not
exist on the others. So the driver copies the set once, as Parquet (:mod:`auxtune.data.parquet`),
to ``<storage>/corrupted-sets/<digest>/``, where ``storage`` is the search's ``tracking.storage``
(a directory every node mounts, ``s3://...``, or any URI ``pyarrow.fs`` opens) and the digest is
of the set's bytes: a later search of the same set finds its copy there and writes nothing. A
trial reads it back one (corruption, severity) block at a time (:class:`StagedCorruptedSet`, a
read-only mapping like the in-memory blocks), so a 2.9 GB CIFAR-10-C never sits in memory whole.
Finding the copy costs one pass over the set's bytes per search (BLAKE2b hashes about 1.2 GB of
it per CPU-second here, so some 2.5 s for CIFAR-10-C, plus reading the files).

    >>> import tempfile
    >>> from auxtune.data.cifar_c import write_corruption, write_labels
    >>> root, shared = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> _ = write_labels(root, np.array([3, 1]))
    >>> _ = write_corruption(root, "fog", np.zeros((10, 32, 32, 3), np.uint8))
    >>> staged = stage_corrupted_set(root, shared)
    >>> staged == stage_corrupted_set(root, shared)  # found, not copied again
    True
    >>> blocks = StagedCorruptedSet(staged)
    >>> list(blocks)[:2], blocks["fog", 5][0].shape, blocks["fog", 5][1].tolist()
    ([('fog', 1), ('fog', 2)], (2, 32, 32, 3), [3, 1])
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from auxtune.data.cifar_c import SEVERITIES, CorruptedTestSet
from auxtune.data.parquet import convert_directory, read_block
from auxtune.errors import DataError

if TYPE_CHECKING:
    import pyarrow.fs

STAGING_DIR = "corrupted-sets"
INDEX_FILE = "staged.json"  # written last: a copy without it was interrupted and is redone
DIGEST_CHUNK = 1 << 24  # bytes hashed per read

Block = tuple[np.ndarray, np.ndarray]  # uint8 images (k, 32, 32, 3), int64 labels (k,)


def stage_corrupted_set(root: str | Path, storage: str) -> str:
    """Copy the CIFAR-C directory ``root`` as Parquet under ``storage``, unless a copy of the
    same bytes is there already; return the copy's URI (a path for local storage)."""
    suite = CorruptedTestSet(root)  # validated before anything is written
    uri = f"{_storage_uri(storage)}/{STAGING_DIR}/{content_digest(suite.root)}"
    filesystem, path = _filesystem(uri)
    if _index(filesystem, path) is None:
        _copy_as_parquet(suite, filesystem, path)
    return uri


def content_digest(root: Path) -> str:
    """BLAKE2b of the set's file names and bytes (images and labels): the staged copy's key."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(root.glob("*.npy")):
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with open(path, "rb") as f:
            while chunk := f.read(DIGEST_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def _storage_uri(storage: str) -> str:
    """A URI as given; a local path made absolute (trials run in their own directories)."""
    if "://" in storage:
        return storage.rstrip("/")
    return str(Path(storage).expanduser().resolve())


def _filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as err:  # ArrowInvalid is a ValueError
        raise DataError(f"cannot open storage {uri!r} for the corrupted test set: {err}") from err


def _copy_as_parquet(suite: CorruptedTestSet, filesystem: Any, path: str) -> None:
    """Convert locally, upload the files, then write the index (the mark of a complete copy)."""
    import pyarrow.fs

    with tempfile.TemporaryDirectory(prefix="auxtune-stage-") as tmp:
        local = convert_directory(suite.root, Path(tmp))
        filesystem.create_dir(path, recursive=True)
        pyarrow.fs.copy_files(
            str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(),
            destination_filesystem=filesystem,
        )  # fmt: skip
    index = {
        "corruptions": list(suite.corruptions),
        "block_size": suite.block_size,
        "files": {c: _files_of(filesystem, path, c) for c in suite.corruptions},
    }
    with filesystem.open_output_stream(f"{path}/{INDEX_FILE}") as out:
        out.write(json.dumps(index, indent=2).encode())


def _files_of(filesystem: Any, path: str, corruption: str) -> list[str]:
    import pyarrow.fs

    listing = filesystem.get_file_info(pyarrow.fs.FileSelector(path))
    names = [info.base_name for info in listing if info.base_name.endswith(".parquet")]
    return sorted(n for n in names if n.rpartition("-")[0] == corruption)


def _index(filesystem: Any, path: str) -> dict[str, Any] | None:
    import pyarrow.fs

    index_path = f"{path}/{INDEX_FILE}"
    if filesystem.get_file_info(index_path).type != pyarrow.fs.FileType.File:
        return None
    with filesystem.open_input_stream(index_path) as f:
        return dict(json.loads(f.read()))


class StagedCorruptedSet(Mapping[tuple[str, int], Block]):
    """A staged set as ``{(corruption, severity): (images, labels)}``, read on access.

    Of every severity block, images ``skip_first`` .. ``skip_first + first_k - 1`` are read
    (``first_k=0``: all after the skipped ones), like :class:`CorruptedTestSet`. Only the URI
    travels when the mapping is pickled to a trial; the filesystem is opened where it is read.
    """

    def __init__(self, uri: str, *, skip_first: int = 0, first_k: int = 0) -> None:
        if skip_first < 0 or first_k < 0:
            raise ValueError(f"skip_first ({skip_first}) and first_k ({first_k}) must be >= 0")
        self.uri, self.skip_first, self.first_k = uri, skip_first, first_k

    def __getstate__(self) -> dict[str, Any]:
        return {"uri": self.uri, "skip_first": self.skip_first, "first_k": self.first_k}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    @cached_property
    def _opened(self) -> tuple[Any, str, dict[str, Any]]:
        filesystem, path = _filesystem(self.uri)
        index = _index(filesystem, path)
        if index is None:
            raise DataError(
                f"{self.uri} holds no complete staged corrupted test set ({INDEX_FILE} missing)"
            )
        return filesystem, path, index

    def __getitem__(self, key: tuple[str, int]) -> Block:
        filesystem, path, index = self._opened
        corruption, severity = key
        if corruption not in index["files"] or severity not in SEVERITIES:
            raise KeyError(key)
        files = [f"{path}/{name}" for name in index["files"][corruption]]
        return read_block(files, filesystem, severity, self.skip_first, self.first_k)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        corruptions = self._opened[2]["corruptions"]
        return ((c, s) for c in corruptions for s in SEVERITIES)

    def __len__(self) -> int:
        return len(self._opened[2]["corruptions"]) * len(SEVERITIES)

    def __repr__(self) -> str:
        return (
            f"StagedCorruptedSet({self.uri!r}, skip_first={self.skip_first}, "
            f"first_k={self.first_k})"
        )
