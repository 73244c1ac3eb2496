"""CIFAR-C .npy -> Parquet conversion: exact round trips and clear errors on bad sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from auxtune.data.cifar_c import write_corruption, write_labels, write_manifest
from auxtune.data.parquet import (
    convert_directory,
    images_from_arrow,
    parquet_files,
    read_parquet_arrays,
    write_parquet_from_arrays,
)
from auxtune.errors import DataError

N = 6  # images per severity block
CORRUPTIONS = ("fog", "gaussian_noise")


def _images(seed: int, n: int = 5 * N) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


@pytest.fixture
def npy_dir(tmp_path: Path) -> Path:
    root = tmp_path / "c"
    write_labels(root, np.arange(N) % 4)
    for seed, name in enumerate(CORRUPTIONS):
        write_corruption(root, name, _images(seed))
    write_manifest(root, {"seed": 7})
    return root


def test_round_trip_is_exact(npy_dir: Path, tmp_path: Path) -> None:
    out = convert_directory(npy_dir, tmp_path / "pq", rows_per_file=7)  # parts straddle blocks
    labels = np.load(npy_dir / "labels.npy")
    for name in CORRUPTIONS:
        columns = read_parquet_arrays(out, corruption=name)
        np.testing.assert_array_equal(columns["image"], np.load(npy_dir / f"{name}.npy"))
        np.testing.assert_array_equal(columns["label"], labels)
        np.testing.assert_array_equal(columns["severity"], np.repeat([1, 2, 3, 4, 5], N))
        np.testing.assert_array_equal(columns["index"], np.tile(np.arange(N), 5))
        assert set(columns["corruption"]) == {name}
    assert json.loads((out / "manifest.json").read_text()) == {"seed": 7}
    assert len(parquet_files(out)) == 2 * 5  # 30 rows in files of 7: 5 parts per corruption


def test_reconverting_replaces_files_and_leaves_no_stale_part(
    npy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pq"
    convert_directory(npy_dir, out, rows_per_file=4)
    (npy_dir / "manifest.json").unlink()
    convert_directory(npy_dir, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "fog-00000.parquet",
        "gaussian_noise-00000.parquet",
    ]
    assert len(read_parquet_arrays(out)["label"]) == 2 * 5 * N


def test_converting_over_another_set_is_refused(npy_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "pq"
    write_parquet_from_arrays(out, "snow", _images(3, 5), np.zeros(5, int), np.ones(5, int))
    with pytest.raises(DataError, match="snow"):
        convert_directory(npy_dir, out)
    assert sorted(p.name for p in out.iterdir()) == ["snow-00000.parquet"]  # nothing lost


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    ("broken", "damage"),
    [
        ("labels.npy", lambda p: p.unlink()),
        ("labels.npy", lambda p: np.save(p, np.zeros(5 * N, np.float32))),
        ("labels.npy", lambda p: np.save(p, np.zeros(5 * N + 1, np.int64))),
        ("fog.npy", lambda p: np.save(p, _images(0).astype(np.float32))),
        ("fog.npy", lambda p: np.save(p, _images(0)[:, :16])),
        ("fog.npy", lambda p: np.save(p, _images(0, 4 * N))),
        ("fog.npy", _truncate),
    ],
    ids=[
        "no-labels",
        "float-labels",
        "labels-not-5n",
        "float-images",
        "bad-shape",
        "short",
        "truncated",
    ],
)
def test_bad_source_names_the_file(npy_dir: Path, tmp_path: Path, broken: str, damage) -> None:
    damage(npy_dir / broken)
    with pytest.raises(DataError, match=broken.replace(".", r"\.")):
        convert_directory(npy_dir, tmp_path / "pq")


def test_missing_source_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        convert_directory(tmp_path / "nowhere", tmp_path / "pq")


def test_write_from_arrays_counts_positions_per_severity(tmp_path: Path) -> None:
    severities = np.array([1, 1, 2, 1, 2, 5])
    write_parquet_from_arrays(tmp_path, "fog", _images(0, 6), np.arange(6), severities)
    columns = read_parquet_arrays(tmp_path)
    assert columns["index"].tolist() == [0, 1, 0, 2, 1, 0]
    assert columns["label"].dtype == np.int16 and columns["severity"].dtype == np.int8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"severities": np.full(4, 6)}, "severities"),
        ({"labels": np.full(4, -1)}, "labels span"),
        ({"labels": np.zeros(3, int)}, "labels are"),
        ({"images": np.zeros((4, 32, 32, 3), np.float32)}, "need uint8"),
        ({"corruption": "../fog"}, "lower-case"),
    ],
)
def test_write_from_arrays_rejects_bad_input(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {
        "corruption": "fog",
        "images": _images(0, 4),
        "labels": np.zeros(4, int),
        "severities": np.ones(4, int),
    }
    with pytest.raises(DataError, match=message):
        write_parquet_from_arrays(tmp_path, **{**args, **kwargs})
    assert not list(tmp_path.glob("*.parquet"))


def test_npy_directory_suggests_conversion(npy_dir: Path) -> None:
    with pytest.raises(DataError, match="auxtune data convert"):
        parquet_files(npy_dir)


def test_foreign_parquet_file_is_named(tmp_path: Path) -> None:
    pq.write_table(pa.table({"image": [b"x"], "label": [1]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match=r"other\.parquet"):
        parquet_files(tmp_path)


def test_images_from_arrow_honours_slices() -> None:
    images = _images(1, 5)
    flat = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(3072), 5, [None, pa.py_buffer(images.reshape(5, -1))]
    )
    chunked = pa.chunked_array([flat.slice(0, 2), flat.slice(2)])
    np.testing.assert_array_equal(images_from_arrow(flat.slice(1, 3)), images[1:4])
    np.testing.assert_array_equal(images_from_arrow(chunked), images)
