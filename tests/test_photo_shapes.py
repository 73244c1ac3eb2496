"""The embedded ``photo_shapes`` dataset: deterministic, balanced, made of the photographs it
names (and refusing to run without them), cached by version, recorded with its source; and
``synthetic`` left exactly as it was."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from auxtune.data import photo_shapes, synthetic
from auxtune.data.datasets import load_corrupted_test, load_dataset
from auxtune.data.embedded import EMBEDDED
from auxtune.data.photo_shapes import PHOTOS, load_photo_shapes, make_photo_shapes
from auxtune.errors import DataError
from auxtune.platform.tracking.datasets import split_datasets
from auxtune.robust.config import EMBEDDED_DATASETS, DataConfig


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXTUNE_CACHE", str(tmp_path / "cache"))


def test_synthetic_is_unchanged_bit_for_bit():
    """Pinned from the generator before photo_shapes shared its drawing code (v4)."""
    images, _ = synthetic.make_synthetic(100, seed=0)
    digest = hashlib.sha256(images.tobytes()).hexdigest()
    assert digest == "cbedc74902d8de95bfa4ec8c449e8b7dd7a520ea700d98586cfd5f2deed825eb"


def test_shapes_dtypes_balance_and_determinism():
    images, labels = make_photo_shapes(200, seed=4)
    assert images.shape == (200, 32, 32, 3) and images.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [20] * 10
    again, again_labels = make_photo_shapes(200, seed=4)
    assert np.array_equal(images, again) and np.array_equal(labels, again_labels)
    assert not np.array_equal(images, make_photo_shapes(200, seed=5)[0])


def test_it_is_not_synthetic_with_another_name():
    """Photographic scenes: more texture and a wider range of colours than synthetic's fields."""
    photos, _ = make_photo_shapes(300, seed=0)
    plain, _ = synthetic.make_synthetic(300, seed=0)

    def local_std(images: np.ndarray) -> float:  # mean std within 4x4 patches, per channel
        patches = images.astype(np.float32).reshape(len(images), 8, 4, 8, 4, 3)
        return float(patches.std(axis=(2, 4)).mean())

    assert local_std(photos) > 1.2 * local_std(plain)


def test_the_class_is_the_shape_alone():
    """Scenes, materials and tints are drawn independently of the class: an image's hue says
    little of it (class means of chromaticity differ far less than images do; what differs
    comes from how much of the image the shape covers)."""
    images, labels = make_photo_shapes(2000, seed=2)
    colour = images.reshape(len(images), -1, 3).astype(np.float64).mean(1)
    chroma = colour / colour.sum(1, keepdims=True)
    per_class = np.stack([chroma[labels == k].mean(0) for k in range(10)])
    assert np.ptp(per_class, axis=0).max() < 0.05 < chroma.std(0).max()


def test_every_photo_is_licensed_and_hashed():
    assert all(p.licence.startswith(("CC0", "public domain")) for p in PHOTOS)
    tags = EMBEDDED["photo_shapes"].source_tags()
    assert tags["generator"] == "auxtune.data.photo_shapes"
    assert tags["generator_version"] == str(photo_shapes.GENERATOR_VERSION)
    assert len(tags["photos_sha256"]) == 64 and "scikit-image" in tags["photos"]


def test_a_missing_photograph_fails_naming_it(monkeypatch, tmp_path):
    monkeypatch.setattr(photo_shapes, "photo_dir", lambda: tmp_path)
    photo_shapes.photo_digest.cache_clear()
    photo_shapes._plane.cache_clear()
    try:
        with pytest.raises(DataError, match=r"astronaut\.png is missing; reinstall scikit-image"):
            make_photo_shapes(10, seed=0)
        with pytest.raises(DataError, match=r"astronaut\.png"):
            photo_shapes.photo_digest()
    finally:
        photo_shapes.photo_digest.cache_clear()
        photo_shapes._plane.cache_clear()


def test_cache_is_keyed_by_version_and_photos(tmp_path):
    images, _ = load_photo_shapes(30, seed=1)
    (path,) = (tmp_path / "cache" / "synthetic").glob("photo_shapes-*.npz")
    tag = EMBEDDED["photo_shapes"].cache_tag
    assert path.name == f"photo_shapes-{tag}-seed1-n30.npz"
    assert tag == f"v{photo_shapes.GENERATOR_VERSION}-{photo_shapes.photo_digest()[:12]}"
    path.write_bytes(b"garbage")  # a corrupt entry is drawn again
    assert np.array_equal(load_photo_shapes(30, seed=1)[0], images)


def test_it_is_a_dataset_like_any_other():
    assert set(EMBEDDED) == set(EMBEDDED_DATASETS)
    cfg = DataConfig(
        dataset="photo_shapes", num_train=40, num_val=20, num_test=20, holdout=10,
        c_images_per_block=2,
    )  # fmt: skip
    splits = load_dataset(cfg)
    assert splits.name == "photo_shapes" and splits.num_classes == 10
    seen: dict[bytes, str] = {}
    for name in ("train", "val", "holdout", "test"):
        for image in getattr(splits, name).images:
            assert seen.setdefault(image.tobytes(), name) == name  # no image in two splits
    suite = load_corrupted_test(cfg, splits)
    assert suite.root.name.startswith(f"photo_shapes-c-{EMBEDDED['photo_shapes'].cache_tag}-")
    assert suite.images("fog", 3).shape == (2, 32, 32, 3)
    train, _, _ = split_datasets(cfg, splits)
    source = json.loads(train.source)["tags"]
    assert train.name == "photo_shapes-train" and source["generator"] == "auxtune.data.photo_shapes"
    assert source["photos_sha256"] == photo_shapes.photo_digest()
