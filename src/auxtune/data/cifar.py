"""CIFAR-10 and CIFAR-100 from the standard python layout under ``data_dir``.

The pickled batches are read here directly (torchvision's loader insists on the released files'
md5 sums, so it rejects the tiny fake layouts tests build); torchvision is used only to download.
They are unpickled with an allow-list (:data:`ALLOWED_GLOBALS`): a batch is a dict of byte
strings, lists and one numpy array, so any other global a file names (``os.system``, ``eval``...)
is refused before it can run, and a crafted ``data_dir`` cannot execute code.

    data_dir/cifar-10-batches-py/{data_batch_1..5, test_batch}   keys b"data", b"labels"
    data_dir/cifar-100-python/{train, test}                      keys b"data", b"fine_labels"
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from auxtune.errors import DataError


@dataclass(frozen=True)
class CifarLayout:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    label_key: bytes
    num_classes: int


LAYOUTS = {
    "cifar10": CifarLayout(
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        b"labels",
        10,
    ),
    "cifar100": CifarLayout("cifar-100-python", ("train",), ("test",), b"fine_labels", 100),
}


#: The only globals a CIFAR batch names: numpy's array and dtype reconstructors, under numpy 1's
#: module path (the released files, written by Python 2) and numpy 2's (``numpy._core``; protocol 5
#: pickles use ``_frombuffer``), and ``_codecs.encode``, which Python 3's protocol 2 wraps bytes in.
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle named a global outside :data:`ALLOWED_GLOBALS`; nothing of it was called."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :data:`ALLOWED_GLOBALS`, without importing anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobalError(f"{module}.{name}")
        return _allowed_objects()[name]


def _allowed_objects() -> dict[str, Callable[..., Any]]:
    # numpy 2 keeps these in numpy._core (numpy.core still answers, with a deprecation warning)
    try:
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer  # type: ignore[attr-defined]
    except ImportError:  # numpy 1
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
        from numpy.core.numeric import _frombuffer  # type: ignore[attr-defined,no-redef]
    import codecs

    return {
        "ndarray": np.ndarray,
        "dtype": np.dtype,
        "_reconstruct": _reconstruct,
        "_frombuffer": _frombuffer,
        "encode": codecs.encode,
    }


def load_batch(file: BinaryIO) -> Any:
    """Unpickle one CIFAR batch (Python 2 ``str`` read as bytes), admitting only numpy's globals.

    >>> import io, pickle
    >>> load_batch(io.BytesIO(pickle.dumps({b"labels": [3, 1]})))
    {b'labels': [3, 1]}
    >>> load_batch(io.BytesIO(pickle.dumps(print)))
    Traceback (most recent call last):
    ...
    auxtune.data.cifar.RefusedGlobalError: builtins.print
    """
    return _BatchUnpickler(file, encoding="bytes").load()


def load_cifar(
    name: str, data_dir: str | Path | None, *, train: bool, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One split of ``cifar10`` or ``cifar100``: uint8 images (N, 32, 32, 3), int64 labels (N,).

    Missing files raise :class:`DataError` naming the directory; with ``download=True``
    torchvision fetches the dataset into ``data_dir`` first.
    """
    layout = LAYOUTS[name]
    root = _root(name, data_dir)
    files = layout.train_files if train else layout.test_files
    if download and not all((root / layout.folder / f).is_file() for f in files):
        _download(name, root)
    parts = [_read_batch(root / layout.folder / f, layout) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def check_layout(name: str, data_dir: str | Path | None) -> None:
    """Raise the :class:`DataError` :func:`load_cifar` would for a missing file, without reading."""
    layout = LAYOUTS[name]
    root = _root(name, data_dir)
    for file in layout.train_files + layout.test_files:
        _check_exists(root / layout.folder / file, layout)


def _root(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise DataError(
            f"data.data_dir is not set: {name} is read from <data_dir>/{LAYOUTS[name].folder}/; "
            "set data.data_dir (and data.download=true to fetch it)"
        )
    return Path(data_dir).expanduser()


def _check_exists(path: Path, layout: CifarLayout) -> None:
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: expected the CIFAR python layout "
            f"<data_dir>/{layout.folder}/{{{', '.join(layout.train_files + layout.test_files)}}}; "
            "set data.download=true to fetch it"
        )


def _download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except Exception as err:  # network or disk: the user can fix either
        raise DataError(f"downloading {name} into {root} failed: {err}") from err


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    _check_exists(path, layout)
    try:
        with open(path, "rb") as f:
            batch = load_batch(f)
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
    except RefusedGlobalError as err:
        raise DataError(
            f"{path} names {err}, which a CIFAR batch never holds: refused before anything ran "
            "(only dicts, lists, bytes, str, numbers and numpy arrays are read); is this data_dir "
            "from a source you trust?"
        ) from None
    except Exception as err:  # a truncated or foreign file: pickle raises many kinds
        raise DataError(
            f"{path} is not a CIFAR python batch (a pickled dict with b'data' and "
            f"{layout.label_key!r}): {type(err).__name__}: {err}"
        ) from err
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' is {data.dtype} {data.shape}; expected uint8 (N, 3072)")
    if labels.shape != (len(data),):
        raise DataError(f"{path}: {len(labels)} labels for {len(data)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DataError(f"{path}: labels outside [0, {layout.num_classes})")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels
