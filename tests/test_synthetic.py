"""The embedded ``synthetic`` dataset: deterministic, balanced, learnable, not rotation-symmetric."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from auxtune.data import synthetic
from auxtune.data.datasets import load_dataset
from auxtune.data.synthetic import SHAPES, SYNTHETIC_CLASSES, load_synthetic, make_synthetic
from auxtune.robust.config import DataConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXTUNE_CACHE", str(tmp_path / "cache"))


def test_shapes_dtypes_and_balance():
    images, labels = make_synthetic(200, seed=4)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (200,) and labels.dtype == np.int64
    assert len(SYNTHETIC_CLASSES) == 10
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10
    assert images.std() > 20  # not blank


def test_deterministic_by_seed():
    a, la = make_synthetic(30, seed=7)
    b, lb = make_synthetic(30, seed=7)
    c, _ = make_synthetic(30, seed=8)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def _contrast_features(images: np.ndarray) -> np.ndarray:
    """Colour-blind features: how far each pixel's grey level is from the image's median."""
    grey = images.astype(np.float32).mean(-1)
    grey = np.abs(grey - np.median(grey.reshape(len(grey), -1), axis=1)[:, None, None])
    return grey.reshape(len(grey), 16, 2, 16, 2).mean((2, 4)).reshape(len(grey), -1)


def test_classes_are_distinguishable_but_not_trivial():
    train_x, train_y = make_synthetic(1000, seed=0)
    test_x, test_y = make_synthetic(500, seed=1)
    features, test_features = _contrast_features(train_x), _contrast_features(test_x)
    centroids = np.stack([features[train_y == k].mean(0) for k in range(10)])
    distance = ((test_features[:, None] - centroids[None]) ** 2).sum(-1)
    accuracy = (distance.argmin(1) == test_y).mean()
    assert 0.25 < accuracy < 0.9  # chance is 0.1; a nearest centroid must not solve it


def test_colour_is_a_nuisance():
    images, labels = make_synthetic(1000, seed=2)
    mean_colour = images.reshape(len(images), -1, 3).mean(1)
    per_class = np.stack([mean_colour[labels == k].mean(0) for k in range(10)])
    assert np.ptp(per_class, axis=0).max() < 25  # class-mean colours within ~10% of each other


@pytest.mark.parametrize("k", range(10))
def test_every_shape_is_upright_and_asymmetric(k):
    """Rotations (and a top-bottom mirror, which equals 180 degrees after a flip) change it."""
    c = (np.arange(64) + 0.5) / 32 - 1
    v, u = np.meshgrid(-c, c, indexing="ij")
    mask = SHAPES[k](u, v, np.float64(0.12)) < 0
    for other in (np.rot90(mask, 1), np.rot90(mask, 2), np.rot90(mask, 3), np.flipud(mask)):
        assert (mask & other).sum() / (mask | other).sum() < 0.9


def test_rotated_images_differ():
    images, _ = make_synthetic(50, seed=3)
    for k in (1, 2):
        assert not any(np.array_equal(im, np.rot90(im, k)) for im in images)


def test_cache_round_trip_and_location(tmp_path):
    images, labels = load_synthetic(40, seed=5)
    files = list((tmp_path / "cache" / "synthetic").glob("*.npz"))
    assert len(files) == 1 and "seed5-n40" in files[0].name
    again, again_labels = load_synthetic(40, seed=5)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    files[0].write_bytes(b"garbage")  # a corrupt cache entry is regenerated, not fatal
    assert np.array_equal(load_synthetic(40, seed=5)[0], images)
    load_synthetic(10, seed=0, data_dir=str(tmp_path / "explicit"))
    assert list((tmp_path / "explicit").glob("*.npz"))


def test_splits_never_share_an_image():
    cfg = DataConfig(num_train=300, num_val=100, num_test=100, holdout=100)
    splits = load_dataset(cfg)
    seen: dict[bytes, str] = {}
    for name in ("train", "val", "holdout", "test"):
        for image in getattr(splits, name).images:
            assert seen.setdefault(image.tobytes(), name) == name
    assert (len(splits.train), len(splits.val), len(splits.holdout), len(splits.test)) == (
        300,
        100,
        100,
        100,
    )
    assert splits.num_classes == 10 and splits.name == "synthetic"


def test_docstring_examples():
    assert doctest.testmod(synthetic).failed == 0


def test_corrupted_sets_of_test_splits_of_different_sizes_are_cached_apart(tmp_path):
    """The first images of a test split depend on its size: runs that evaluate the same number
    of images per block on splits of different sizes each get their own corrupted set."""
    from auxtune.data.datasets import load_corrupted_test

    for num_test in (6, 8):
        cfg = DataConfig(
            num_train=8, num_val=4, num_test=num_test, c_images_per_block=2,
            holdout=0, data_dir=str(tmp_path),
        )  # fmt: skip
        splits = load_dataset(cfg)
        suite = load_corrupted_test(cfg, splits)
        assert np.array_equal(suite.labels(1), splits.test.labels[:2])
