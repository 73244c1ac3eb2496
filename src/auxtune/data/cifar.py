"""CIFAR-10 and CIFAR-100 from the standard python layout under ``data_dir``.

The pickled batches are read here directly (torchvision's loader insists on the released files'
md5 sums, so it rejects the tiny fake layouts tests build); torchvision is used only to download.

    data_dir/cifar-10-batches-py/{data_batch_1..5, test_batch}   keys b"data", b"labels"
    data_dir/cifar-100-python/{train, test}                      keys b"data", b"fine_labels"
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

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


def load_cifar(
    name: str, data_dir: str | Path | None, *, train: bool, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One split of ``cifar10`` or ``cifar100``: uint8 images (N, 32, 32, 3), int64 labels (N,).

    Missing files raise :class:`DataError` naming the directory; with ``download=True``
    torchvision fetches the dataset into ``data_dir`` first.
    """
    layout = LAYOUTS[name]
    if data_dir is None:
        raise DataError(
            f"data.data_dir is not set: {name} is read from <data_dir>/{layout.folder}/; "
            "set data.data_dir (and data.download=true to fetch it)"
        )
    root = Path(data_dir).expanduser()
    files = layout.train_files if train else layout.test_files
    if download and not all((root / layout.folder / f).is_file() for f in files):
        _download(name, root)
    parts = [_read_batch(root / layout.folder / f, layout) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels


def _download(name: str, root: Path) -> None:
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        cls(str(root), train=True, download=True)
    except Exception as err:  # network or disk: the user can fix either
        raise DataError(f"downloading {name} into {root} failed: {err}") from err


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(
            f"{path} does not exist: expected the CIFAR python layout "
            f"<data_dir>/{layout.folder}/{{{', '.join(layout.train_files + layout.test_files)}}}; "
            "set data.download=true to fetch it"
        )
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
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
