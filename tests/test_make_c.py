"""``make_c`` and ``auxtune data make-c``: the released layout, manifest, determinism, bad input."""

from __future__ import annotations

import dataclasses
import doctest
import json
import sys
import types

import numpy as np
import pytest

from auxtune.data import corruptions, make_c
from auxtune.data.cifar_c import CorruptedTestSet
from auxtune.data.datasets import load_corrupted_test, load_dataset
from auxtune.data.embedded import split_seed
from auxtune.data.synthetic import make_synthetic
from auxtune.errors import DataError
from auxtune.platform.cli import main
from auxtune.robust.config import DataConfig

N = 8


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUXTUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def base():
    return make_synthetic(N, seed=11)


def test_cli_end_to_end_on_synthetic(tmp_path, capsys):
    out = tmp_path / "synthetic-c"
    argv = ["data", "make-c", "--dataset", "synthetic", "--num", str(N), "--out", str(out)]
    names = ["saturate", "gaussian_noise", "fog"]  # all 19: test_synthetic_corrupted_test_...
    assert main([*argv, "--seed", "3", "--no-progress", "--corruptions", ",".join(names)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["n"] == N
    test_labels = make_synthetic(N, split_seed(0, "test"))[1]
    suite = CorruptedTestSet(out, expected_labels=test_labels, required=names)
    assert suite.corruptions == tuple(names) and suite.block_size == N
    manifest = suite.manifest
    assert manifest is not None
    assert (manifest["seed"], manifest["n"], manifest["base_dataset"]) == (3, N, "synthetic")
    assert manifest["auxtune_version"] and manifest["torch_version"] and manifest["device"] == "cpu"
    assert manifest["parameters"]["gaussian_noise"]["5"] == {"sigma": 0.10}
    assert manifest["corruptions"] == names and set(manifest["parameters"]) == set(names)
    clean = make_synthetic(N, split_seed(0, "test"))[0].astype(int)
    change = [np.abs(suite.images("gaussian_noise", s) - clean).mean() for s in (1, 5)]
    assert 0 < change[0] < change[1]  # severity means something


def test_blocks_do_not_depend_on_which_corruptions_are_made(tmp_path, base):
    images, labels = base
    make_c.make_c(images, labels, tmp_path / "a", corruptions=["fog", "shot_noise"], progress=False)
    make_c.make_c(images, labels, tmp_path / "b", corruptions=["shot_noise"], progress=False)
    make_c.make_c(
        images, labels, tmp_path / "c", corruptions=["shot_noise"], seed=1, progress=False
    )
    a, b, c = (np.load(tmp_path / d / "shot_noise.npy") for d in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(np.load(tmp_path / "a" / "labels.npy"), np.tile(labels, 5))


def test_refuses_to_mix_with_another_runs_files(tmp_path, base):
    images, labels = base
    make_c.make_c(images, labels, tmp_path, corruptions=["contrast"], progress=False)
    with pytest.raises(DataError, match=r"already holds contrast\.npy"):
        make_c.make_c(images, labels, tmp_path, corruptions=["fog"], progress=False)
    assert (tmp_path / "manifest.json").is_file()  # the earlier set is left intact
    make_c.make_c(images, labels, tmp_path, corruptions=["contrast", "fog"], progress=False)


def test_interrupted_run_has_no_manifest(tmp_path, base, monkeypatch):
    images, labels = base
    out = make_c.make_c(images, labels, tmp_path / "c", corruptions=["fog"], progress=False)
    assert (out / "manifest.json").is_file()

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corruptions, "corrupt", broken)
    with pytest.raises(KeyboardInterrupt):
        make_c.make_c(images, labels, out, corruptions=["fog"], progress=False)
    assert not (out / "manifest.json").exists()  # the stale manifest went first
    assert not list(out.glob(".*.tmp"))  # no half-written files left behind


def test_path_inputs(tmp_path, base):
    images, labels = base
    np.savez(tmp_path / "test.npz", images=images, labels=labels)
    (tmp_path / "arrays").mkdir()
    np.save(tmp_path / "arrays" / "images.npy", images)
    np.save(tmp_path / "arrays" / "labels.npy", labels)
    for source in (tmp_path / "test.npz", tmp_path / "arrays"):
        out = tmp_path / f"out-{source.name}"
        argv = ["data", "make-c", "--dataset", str(source), "--out", str(out), "--no-progress"]
        assert main([*argv, "--corruptions", "contrast, saturate", "--num", "5"]) == 0
        suite = CorruptedTestSet(out, expected_labels=labels[:5])
        assert suite.corruptions == ("contrast", "saturate")
        assert suite.manifest["base_dataset"] == str(source)


def test_bad_input_exits_2(tmp_path, base, capsys):
    images, labels = base
    np.savez(tmp_path / "no_labels.npz", images=images)
    np.savez(tmp_path / "floats.npz", images=images.astype(np.float32), labels=labels)
    out = ["--out", str(tmp_path / "out")]
    cases = {
        "does not exist": ["--dataset", str(tmp_path / "missing.npz")],
        "no array 'labels'": ["--dataset", str(tmp_path / "no_labels.npz")],
        "need uint8": ["--dataset", str(tmp_path / "floats.npz")],
        "unknown corruption 'fogg'": ["--dataset", "synthetic", "--corruptions", "fogg"],
        "--num 0": ["--dataset", "synthetic", "--num", "0"],
        "data.data_dir is not set": ["--dataset", "cifar10"],
        "device 'nonsense'": ["--dataset", "synthetic", "--num", "2", "--device", "nonsense"],
    }
    for message, args in cases.items():
        assert main(["data", "make-c", *args, *out]) == 2, message
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "manifest.json").exists()
    with pytest.raises(SystemExit) as exit_info:  # argparse's own usage errors
        main(["data", "make-c", "--dataset", "synthetic", *out, "--format", "tiff"])
    assert exit_info.value.code == 2


def test_parquet_format_and_convert_delegate(tmp_path, base, monkeypatch):
    calls = []
    fake = types.ModuleType("auxtune.data.parquet")
    fake.write_parquet_from_arrays = lambda *args: calls.append(("write", *args))  # type: ignore[attr-defined]
    fake.convert_directory = lambda src, dst: calls.append(("convert", src, dst)) or dst  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "auxtune.data.parquet", fake)
    images, labels = base
    out = make_c.make_c(
        images, labels, tmp_path / "pq", corruptions=["fog"], fmt="parquet", progress=False
    )
    ((kind, out_dir, name, blocks, block_labels, severities),) = calls
    assert (kind, out_dir, name) == ("write", out, "fog") and blocks.shape == (5 * N, 32, 32, 3)
    assert np.array_equal(block_labels, np.tile(labels, 5))
    assert np.array_equal(severities, np.repeat(np.arange(1, 6), N))
    assert json.loads((out / "manifest.json").read_text())["file_format"] == "parquet"
    assert main(["data", "convert", "src-dir", "dst-dir"]) == 0
    assert calls[-1] == ("convert", "src-dir", "dst-dir")


def test_synthetic_corrupted_test_is_built_once(tmp_path, monkeypatch):
    real = make_c.make_c
    two = ("fog", "contrast")  # building all 19 is make-c's default: here it would only be slow
    monkeypatch.setattr(make_c, "make_c", lambda *a, **k: real(*a, **{**k, "corruptions": two}))
    cfg = DataConfig(num_train=10, num_val=10, num_test=N, holdout=10, c_images_per_block=3)
    suite = load_corrupted_test(cfg)
    assert suite.corruptions == two and suite.images_per_block == 3
    assert suite.manifest["base_dataset"] == "synthetic"
    clean = make_synthetic(N, split_seed(0, "test"))[0]
    assert not np.array_equal(suite.images("fog", 5), clean[:3])
    assert not list(suite.root.parent.glob(".*.tmp"))  # built aside, then renamed in

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt a cached corrupted set")

    monkeypatch.setattr(make_c, "make_c", fail)
    again = load_corrupted_test(cfg)
    assert again.root == suite.root
    assert np.array_equal(again.images("fog", 2), suite.images("fog", 2))


def test_synthetic_corrupted_test_corrupts_only_the_images_it_keeps(monkeypatch):
    real = make_c.make_c
    built = []

    def record(images, *args, **kwargs):
        built.append(len(images))
        return real(images, *args, **{**kwargs, "corruptions": ("fog",)})

    monkeypatch.setattr(make_c, "make_c", record)
    cfg = DataConfig(num_train=10, num_val=10, num_test=N, holdout=10, c_images_per_block=3)
    kept = load_corrupted_test(cfg, skip_first=2)
    assert built == [5] and kept.images_per_block == 3  # 2 skipped + 3 kept, not all N
    assert np.array_equal(kept.labels(), load_dataset(cfg).test.labels[2:5])
    everything = load_corrupted_test(dataclasses.replace(cfg, c_images_per_block=0))
    assert built == [5, N] and everything.images_per_block == N


def test_make_c_validates_arguments(tmp_path, base):
    images, labels = base
    with pytest.raises(DataError, match="unknown format"):
        make_c.make_c(images, labels, tmp_path, fmt="csv", progress=False)
    with pytest.raises(DataError, match="base labels"):
        make_c.make_c(images, labels[:3], tmp_path, progress=False)
    with pytest.raises(DataError, match="no corruption given"):
        make_c.make_c(images, labels, tmp_path, corruptions=[], progress=False)


def test_docstring_examples(tmp_path):
    assert doctest.testmod(make_c).failed == 0
