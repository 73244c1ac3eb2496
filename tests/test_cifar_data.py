"""CIFAR python-layout loading and the CIFAR-C directory layout, on tiny fake files."""

from __future__ import annotations

import doctest
import pickle
from pathlib import Path

import numpy as np
import pytest

from auxtune.data import cifar_c
from auxtune.data.cifar import load_cifar
from auxtune.data.cifar_c import CorruptedTestSet, write_corruption, write_labels, write_manifest
from auxtune.data.datasets import load_corrupted_test, load_dataset
from auxtune.errors import DataError
from auxtune.robust.config import DataConfig

N_TRAIN_BATCH, N_TEST = 8, 10  # 5 x 8 = 40 training images


def _write_batch(path: Path, rng: np.random.Generator, n: int, label_key: str, classes: int):
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, classes, n).tolist()
    path.write_bytes(pickle.dumps({b"data": data, label_key.encode(): labels}))
    return data, labels


@pytest.fixture
def cifar10_root(tmp_path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _write_batch(folder / f"data_batch_{i}", rng, N_TRAIN_BATCH, "labels", 10)
    _write_batch(folder / "test_batch", rng, N_TEST, "labels", 10)
    return tmp_path


def test_reads_the_python_layout(cifar10_root):
    images, labels = load_cifar("cifar10", cifar10_root, train=True)
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.shape == (40,)
    raw = pickle.loads((cifar10_root / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    # channel-first rows of 1024 become NHWC: red plane first
    assert np.array_equal(images[0, :, :, 0].ravel(), raw[b"data"][0, :1024])
    assert np.array_equal(images[0, :, :, 2].ravel(), raw[b"data"][0, 2048:])
    test_images, _ = load_cifar("cifar10", cifar10_root, train=False)
    assert len(test_images) == N_TEST


def test_cifar100_layout(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    _write_batch(folder / "train", rng, 12, "fine_labels", 100)
    _write_batch(folder / "test", rng, 6, "fine_labels", 100)
    splits = load_dataset(
        DataConfig(dataset="cifar100", data_dir=str(tmp_path), num_val=2, holdout=3)
    )
    assert splits.num_classes == 100 and len(splits.test) == 6


def test_splits_are_disjoint_slices_of_train(cifar10_root):
    cfg = DataConfig(dataset="cifar10", data_dir=str(cifar10_root), num_val=5, holdout=7)
    splits = load_dataset(cfg)
    assert (len(splits.train), len(splits.val), len(splits.holdout), len(splits.test)) == (
        28,
        5,
        7,
        10,
    )
    full, _ = load_cifar("cifar10", cifar10_root, train=True)
    rows = {im.tobytes(): i for i, im in enumerate(full)}
    index = {
        s: {rows[im.tobytes()] for im in getattr(splits, s).images}
        for s in ("train", "val", "holdout")
    }
    assert set().union(*index.values()) == set(range(40))
    assert sum(len(v) for v in index.values()) == 40
    again = load_dataset(cfg)
    assert np.array_equal(again.holdout.images, splits.holdout.images)  # fixed by data.seed


def test_too_large_holdout_is_an_error(cifar10_root):
    with pytest.raises(DataError, match=r"data\.holdout"):
        load_dataset(
            DataConfig(dataset="cifar10", data_dir=str(cifar10_root), num_val=20, holdout=20)
        )


def test_missing_dir_names_it_and_suggests_download(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*data\.download=true"):
        load_cifar("cifar10", tmp_path, train=True)
    with pytest.raises(DataError, match=r"data\.data_dir is not set"):
        load_dataset(DataConfig(dataset="cifar10"))


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a pickle", "not a CIFAR python batch"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}), "uint8"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), "3072"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "1 labels for 2"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "outside"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}), "not a CIFAR python batch"),
    ],
)
def test_bad_batch_names_the_file(cifar10_root, content, match):
    bad = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        load_cifar("cifar10", cifar10_root, train=True)
    assert "data_batch_3" in str(info.value)


# --------------------------------------------------------------------------- CIFAR-C layout
def _c_dir(root: Path, n: int = 6, names=("fog", "snow")) -> tuple[Path, np.ndarray]:
    labels = np.arange(n) % 3
    write_labels(root, labels)
    for k, name in enumerate(names):
        blocks = np.repeat(np.arange(5 * n, dtype=np.uint8), 32 * 32 * 3) + k
        write_corruption(root, name, blocks.reshape(5 * n, 32, 32, 3))
    return root, labels


def test_layout_round_trip_and_slicing(tmp_path):
    root, labels = _c_dir(tmp_path)
    assert np.load(root / "labels.npy").dtype == np.uint8  # like the release
    suite = CorruptedTestSet(root, expected_labels=labels)
    assert suite.corruptions == ("fog", "snow") and suite.block_size == 6 and suite.manifest is None
    block = suite.images("fog", 3)
    assert block.shape == (6, 32, 32, 3) and block[:, 0, 0, 0].tolist() == list(range(12, 18))
    assert suite.labels(3).tolist() == labels.tolist()
    quick = suite.subset(skip_first=2, first_k=3)  # paper protocol skip + quick evaluation
    assert quick.images_per_block == 3
    assert quick.images("snow", 1)[:, 0, 0, 0].tolist() == [3, 4, 5]
    assert quick.labels(1).tolist() == labels[2:5].tolist()
    assert suite.subset(skip_first=4).images_per_block == 2
    ordered = CorruptedTestSet(root, required=("snow",))
    assert ordered.corruptions == ("snow", "fog")
    write_manifest(root, {"seed": 3})
    assert CorruptedTestSet(root).manifest == {"seed": 3}


def test_load_corrupted_test_respects_c_images_per_block(tmp_path):
    root, labels = _c_dir(tmp_path / "c")
    cfg = DataConfig(corruptions_dir=str(root), c_images_per_block=4)
    suite = load_corrupted_test(cfg, skip_first=1)
    assert suite.images_per_block == 4 and suite.labels().tolist() == labels[1:5].tolist()


def _assert_names(err: pytest.ExceptionInfo, filename: str) -> None:
    assert filename in str(err.value), str(err.value)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        CorruptedTestSet(tmp_path / "nowhere")
    root, _ = _c_dir(tmp_path)
    (root / "labels.npy").unlink()
    with pytest.raises(DataError) as err:
        CorruptedTestSet(root)
    _assert_names(err, "labels.npy")
    root, _ = _c_dir(tmp_path)
    with pytest.raises(DataError) as err:
        CorruptedTestSet(root, required=("fog", "frost"))
    _assert_names(err, "frost.npy")
    for name in ("fog", "snow"):
        (root / f"{name}.npy").unlink()
    with pytest.raises(DataError, match=r"no <corruption>\.npy"):
        CorruptedTestSet(root)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((30, 32, 32, 3), np.float32),  # dtype
        np.zeros((25, 32, 32, 3), np.uint8),  # 5 x 5 images, labels say 5 x 6
        np.zeros((30, 32, 32), np.uint8),  # not RGB
        np.zeros((30, 28, 28, 3), np.uint8),  # not 32x32
    ],
)
def test_wrong_image_file(tmp_path, array):
    root, _ = _c_dir(tmp_path)
    np.save(root / "fog.npy", array)
    with pytest.raises(DataError, match=r"expected uint8 \(30, 32, 32, 3\)") as err:
        CorruptedTestSet(root)
    _assert_names(err, "fog.npy")


def test_unreadable_image_file(tmp_path):
    root, _ = _c_dir(tmp_path)
    (root / "snow.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError) as err:
        CorruptedTestSet(root)
    _assert_names(err, "snow.npy")


@pytest.mark.parametrize(
    "labels, expected, match",
    [
        (np.zeros((5, 6), np.uint8), None, "expected integers of shape"),  # 2-D
        (np.zeros(29, np.uint8), None, "expected integers of shape"),  # not 5n
        (np.zeros(30, np.float32), None, "expected integers of shape"),  # dtype
        (np.arange(30, dtype=np.uint8), None, "expected repeats"),  # not repeated
        (np.tile(np.arange(6, dtype=np.uint8), 5), np.arange(7), "has 7"),  # wrong test size
        (np.tile(np.arange(6, dtype=np.uint8), 5), np.arange(6)[::-1], "different values"),
    ],
)
def test_label_mismatch(tmp_path, labels, expected, match):
    root, _ = _c_dir(tmp_path)
    np.save(root / "labels.npy", labels)
    with pytest.raises(DataError, match=match) as err:
        CorruptedTestSet(root, expected_labels=expected)
    _assert_names(err, "labels.npy")


def test_bad_slices_and_names(tmp_path):
    root, _ = _c_dir(tmp_path)
    with pytest.raises(DataError, match="cannot skip 6"):
        CorruptedTestSet(root, skip_first=6)
    suite = CorruptedTestSet(root)
    with pytest.raises(DataError, match=r"no frost\.npy; present: fog, snow"):
        suite.images("frost", 1)
    with pytest.raises(ValueError, match="severity 6"):
        suite.images("fog", 6)


def test_parquet_directory_is_pointed_out(tmp_path):
    (tmp_path / "fog.parquet").write_bytes(b"")
    write_labels(tmp_path, np.arange(3))
    with pytest.raises(DataError, match="Parquet"):
        CorruptedTestSet(tmp_path)


def test_cifar_without_corruptions_dir_says_how_to_get_one():
    with pytest.raises(DataError, match="auxtune data make-c --dataset cifar10"):
        load_corrupted_test(DataConfig(dataset="cifar10"))


def test_docstring_examples():
    assert doctest.testmod(cifar_c).failed == 0
