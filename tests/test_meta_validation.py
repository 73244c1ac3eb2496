"""Meta-validation protocols: ``holdout`` never leaks the test set; batches are fixed by index."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from auxtune.data import corruptions, meta_validation
from auxtune.data.cifar_c import write_corruption, write_labels
from auxtune.data.corruptions import CORRUPTIONS, EXTRA_CORRUPTIONS, STANDARD_CORRUPTIONS
from auxtune.data.datasets import DatasetSplits, ImageSet, load_corrupted_test, load_dataset
from auxtune.data.meta_validation import (
    PAPER_PROTOCOL_SKIP,
    evaluation_skip,
    meta_validation_stream,
)
from auxtune.errors import DataError
from auxtune.robust.config import DataConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXTUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def cfg():
    return DataConfig(num_train=40, num_val=20, num_test=40, holdout=60)


@pytest.fixture
def splits(cfg):
    return load_dataset(cfg)


def test_holdout_uses_only_extra_corruptions_and_holdout_images(splits, cfg, monkeypatch):
    used = []
    real = corruptions.corrupt

    def spy(images, name, severity, *, seed=0):
        used.append((name, severity))
        return real(images, name, severity, seed=seed)

    monkeypatch.setattr(corruptions, "corrupt", spy)
    stream = meta_validation_stream("holdout", splits, cfg, batch_size=16, seed=5)
    assert {name for name, _ in used} <= set(EXTRA_CORRUPTIONS)
    assert not set(stream.corruptions) & set(STANDARD_CORRUPTIONS)
    assert set(stream.corruptions) == {name for name, _ in used}
    assert {severity for _, severity in used} <= {1, 2, 3, 4, 5}
    assert len(used) > 5  # the pool mixes corruptions and severities

    test_images = {image.tobytes() for image in splits.test.images}
    for index in range(20):
        images, labels = stream.batch(index)
        assert images.shape == (16, 32, 32, 3) and images.dtype == np.uint8
        assert labels.dtype == np.int64
        assert not any(image.tobytes() in test_images for image in images)
    # every pool image is a corrupted holdout image, in holdout order
    assert np.array_equal(stream.labels, splits.holdout.labels)
    changed = (stream.images != splits.holdout.images).reshape(len(stream.labels), -1).any(1)
    assert changed.mean() > 0.8


def test_batches_are_fixed_by_index(splits, cfg):
    first = meta_validation_stream("holdout", splits, cfg, batch_size=8, seed=1)
    np.random.seed(123)  # global RNG state must not matter
    second = meta_validation_stream("holdout", splits, cfg, batch_size=8, seed=1)
    for index in (0, 1, 17, 10_000):
        a, b = first.batch(index), second.batch(index)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(first.batch(0)[0], first.batch(1)[0])
    stream = iter(first)
    for index in range(3):
        assert np.array_equal(next(stream)[0], first.batch(index)[0])
    other_seed = meta_validation_stream("holdout", splits, cfg, batch_size=8, seed=2)
    assert not np.array_equal(other_seed.batch(0)[0], first.batch(0)[0])


def test_batches_draw_without_replacement_when_the_pool_allows(splits, cfg):
    stream = meta_validation_stream("holdout", splits, cfg, batch_size=60, seed=0)
    assert sorted(stream.batch(3)[1].tolist()) == sorted(splits.holdout.labels.tolist())
    small = meta_validation_stream("holdout", splits, cfg, batch_size=100, seed=0)
    assert len(small.batch(0)[0]) == 100


def test_holdout_needs_holdout_images(splits, cfg):
    empty = ImageSet(np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.int64))
    no_holdout = DatasetSplits(splits.train, splits.val, empty, splits.test, 10, "synthetic")
    with pytest.raises(DataError, match=r"data\.holdout > 0"):
        meta_validation_stream("holdout", no_holdout, cfg, batch_size=4, seed=0)


def test_unknown_protocol(splits, cfg):
    with pytest.raises(DataError, match="choose one of holdout, paper"):
        meta_validation_stream("test", splits, cfg, batch_size=4, seed=0)


# ------------------------------------------------------------------------------ paper protocol
BLOCK = 120  # images per severity block of the fake CIFAR-C directory


def _fake_c_dir(root, names=CORRUPTIONS):
    """Pixel (0, 0) encodes where an image comes from: (position in block, corruption, severity)."""
    labels = np.arange(BLOCK) % 10
    write_labels(root, labels)
    position = np.tile(np.arange(BLOCK), 5)
    severity = np.repeat(np.arange(1, 6), BLOCK)
    for k, name in enumerate(names):
        images = np.zeros((5 * BLOCK, 32, 32, 3), np.uint8)
        images[:, 0, 0] = np.stack([position, np.full_like(position, k), severity], axis=1)
        write_corruption(root, name, images)
    return labels


def _paper_splits(labels):
    test = ImageSet(np.zeros((len(labels), 32, 32, 3), np.uint8), labels.astype(np.int64))
    return DatasetSplits(test, test, test, test, 10, "fake")


def test_paper_protocol_takes_the_first_100_of_every_block(tmp_path):
    labels = _fake_c_dir(tmp_path)
    cfg = DataConfig(corruptions_dir=str(tmp_path), c_images_per_block=7)
    stream = meta_validation_stream("paper", _paper_splits(labels), cfg, batch_size=32, seed=0)
    assert stream.corruptions == CORRUPTIONS
    pixel = stream.images[:, 0, 0].astype(int)
    assert len(stream.labels) == len(CORRUPTIONS) * 5 * PAPER_PROTOCOL_SKIP
    assert pixel[:, 0].max() == PAPER_PROTOCOL_SKIP - 1  # only the first 100 of each block
    assert set(map(tuple, pixel[:, 1:])) == {(k, s) for k in range(19) for s in range(1, 6)}
    assert np.array_equal(stream.labels, labels[pixel[:, 0]])
    # evaluation then skips exactly those images
    assert evaluation_skip("paper") == PAPER_PROTOCOL_SKIP and evaluation_skip("holdout") == 0
    suite = load_corrupted_test(cfg, skip_first=evaluation_skip("paper"))
    assert suite.images("fog", 2)[:, 0, 0, 0].tolist() == list(range(100, 107))


def test_paper_protocol_needs_all_19_and_big_enough_blocks(tmp_path):
    labels = _fake_c_dir(tmp_path / "some", names=CORRUPTIONS[:-1])
    cfg = DataConfig(corruptions_dir=str(tmp_path / "some"))
    with pytest.raises(DataError, match=r"lacks saturate\.npy"):
        meta_validation_stream("paper", _paper_splits(labels), cfg, batch_size=4, seed=0)
    small, small_labels = tmp_path / "small", np.arange(50) % 10
    write_labels(small, small_labels)
    for name in CORRUPTIONS:
        write_corruption(small, name, np.zeros((250, 32, 32, 3), np.uint8))
    cfg = DataConfig(corruptions_dir=str(small))
    with pytest.raises(DataError, match="blocks of 50"):
        meta_validation_stream("paper", _paper_splits(small_labels), cfg, batch_size=4, seed=0)


def test_docstring_examples():
    assert doctest.testmod(meta_validation).failed == 0
