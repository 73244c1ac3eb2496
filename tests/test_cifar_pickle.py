"""CIFAR batches are read with a restricted unpickler: the released format loads, code never runs.

The released ``cifar-10-batches-py`` / ``cifar-100-python`` files were written by Python 2's
cPickle with protocol 2: a dict of byte-string keys holding a numpy uint8 array (rebuilt through
the globals ``numpy.core.multiarray._reconstruct``, ``numpy.ndarray`` and ``numpy.dtype``), lists
of ints and lists of byte strings. :func:`python2_batch` writes that exact opcode layout (Python 3
cannot: its protocol 2 wraps bytes in ``_codecs.encode``), so these tests read what a user's
download holds without needing the download.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from auxtune.data.cifar import ALLOWED_GLOBALS, load_cifar
from auxtune.errors import DataError

N = 6  # images per fake batch


# ------------------------------------------------------------- the released (Python 2) layout
def python2_batch(batch: dict[bytes, object]) -> bytes:
    """``batch`` pickled the way the CIFAR release was (cPickle, protocol 2, py2 ``str`` keys)."""
    out = bytearray(b"\x80\x02")
    _emit(out, batch)
    return bytes(out + b".")


def _emit(out: bytearray, value: object) -> None:
    if isinstance(value, dict):
        out += b"}("
        for key, item in value.items():
            _emit(out, key)
            _emit(out, item)
        out += b"u"
    elif isinstance(value, list):
        out += b"]("
        for item in value:
            _emit(out, item)
        out += b"e"
    elif isinstance(value, bytes):  # py2 str: SHORT_BINSTRING / BINSTRING
        head = (
            b"U" + bytes([len(value)]) if len(value) < 256 else b"T" + struct.pack("<I", len(value))
        )
        out += head + value
    elif isinstance(value, int):
        out += b"K" + bytes([value]) if 0 <= value < 256 else b"J" + struct.pack("<i", value)
    elif isinstance(value, np.ndarray):
        _emit_array(out, value)
    else:
        raise TypeError(type(value))


def _emit_array(out: bytearray, array: np.ndarray) -> None:
    assert array.dtype == np.uint8 and array.ndim == 2
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
    out += b"(K\x01"  # state: (version, shape, dtype, fortran_order, raw bytes)
    out += b"J" + struct.pack("<i", array.shape[0]) + b"J" + struct.pack("<i", array.shape[1])
    out += b"\x86"  # TUPLE2: the shape
    out += b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
    out += b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89"  # NEWFALSE: C order
    _emit(out, array.tobytes())
    out += b"tb"


def _globals_of(data: bytes) -> set[tuple[str, str]]:
    import pickletools

    found = set()
    for op, arg, _ in pickletools.genops(data):
        if op.name == "GLOBAL":
            module, name = str(arg).split(" ")
            found.add((module, name))
    return found


def _cifar10(root: Path, writer) -> dict[str, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (N, 3072), dtype=np.uint8)
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, N)],
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(N)],
        }
        (folder / name).write_bytes(writer(batch))
        written[name] = data
    return written


def test_the_python2_writer_matches_the_release_layout():
    data = python2_batch({b"data": np.arange(6, dtype=np.uint8).reshape(2, 3), b"labels": [1, 2]})
    assert data[:2] == b"\x80\x02"
    assert _globals_of(data) == {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
    loaded = pickle.loads(data, encoding="bytes")  # what the unrestricted loader makes of it
    assert loaded[b"labels"] == [1, 2]
    assert np.array_equal(loaded[b"data"], np.arange(6, dtype=np.uint8).reshape(2, 3))


def test_the_released_layout_loads(tmp_path):
    written = _cifar10(tmp_path, python2_batch)
    images, labels = load_cifar("cifar10", tmp_path, train=False)
    assert images.shape == (N, 32, 32, 3) and labels.shape == (N,)
    assert np.array_equal(images[:, :, :, 0].reshape(N, -1), written["test_batch"][:, :1024])


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_python3_pickles_of_the_same_dict_load(tmp_path, protocol):
    """Re-saved batches (numpy 2 writes ``numpy._core``; protocol 5 uses ``_frombuffer``)."""
    written = _cifar10(tmp_path, lambda batch: pickle.dumps(batch, protocol=protocol))
    images, _ = load_cifar("cifar10", tmp_path, train=True)
    assert images.shape == (5 * N, 32, 32, 3)
    assert np.array_equal(images[:N, :, :, 2].reshape(N, -1), written["data_batch_1"][:, 2048:])


class _Payload:
    """Unpickling it runs ``call(*args)``: the attack a crafted data_dir carries."""

    def __init__(self, call, *args) -> None:
        self.call, self.args = call, args

    def __reduce__(self):
        return (self.call, self.args)


def _payloads(marker: Path) -> dict[str, object]:
    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(marker)]),
        "builtins.exec": _Payload(exec, f"open({str(marker)!r}, 'w').close()"),
        "pathlib.Path.touch": _Payload(Path.touch, marker),
    }


@pytest.mark.parametrize(
    "attack", ["os.system", "subprocess.call", "builtins.exec", "pathlib.Path.touch"]
)
@pytest.mark.parametrize("protocol", [2, 4])
def test_a_payload_is_refused_before_it_runs(tmp_path, attack, protocol):
    marker = tmp_path / "pwned"
    _cifar10(tmp_path / "data", python2_batch)
    evil = {b"labels": [0] * N, b"data": _payloads(marker)[attack]}
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps(evil, protocol=protocol)
    )
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", tmp_path / "data", train=False)
    assert not marker.exists(), "the payload ran"
    message = str(info.value)
    assert "test_batch" in message and "refused" in message and "\n" not in message


def test_a_payload_after_valid_data_is_refused_too(tmp_path):
    """Refusal happens when the global is looked up, so data before it does not help."""
    marker = tmp_path / "pwned"
    _cifar10(tmp_path, python2_batch)
    batch = {
        b"data": np.zeros((N, 3072), np.uint8),
        b"labels": [0] * N,
        b"x": _payloads(marker)["os.system"],
    }
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError, match=r"(posix|os)\.system"):
        load_cifar("cifar10", tmp_path, train=False)
    assert not marker.exists()


def test_the_cli_answers_a_payload_with_one_line_and_no_side_effect(tmp_path):
    marker = tmp_path / "pwned"
    _cifar10(tmp_path / "data", python2_batch)
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps(_payloads(marker)["os.system"], protocol=2)
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "auxtune.platform.cli", "data", "make-c", "--dataset", "cifar10",
         "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert not marker.exists(), "the payload ran"
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "refused" in done.stderr
    assert not (tmp_path / "out").exists()


def test_the_allow_list_is_only_numpy_reconstruction():
    modules = {module for module, _ in ALLOWED_GLOBALS}
    assert modules <= {
        "numpy",
        "numpy.core.multiarray",
        "numpy._core.multiarray",
        "numpy.core.numeric",
        "numpy._core.numeric",
        "_codecs",
    }
    assert ("_codecs", "encode") in ALLOWED_GLOBALS  # Python 3's protocol 2 writes bytes this way
