"""``check_writable``: an output location is checked before the work, and the check leaves nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from auxtune.errors import UserError
from auxtune.platform.outputs import check_writable

UNDER_PROC = "/proc/auxtune-test/out"  # nobody (root included) may create anything here


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_new_file_in_a_new_directory_passes_and_nothing_is_created(tmp_path):
    target = tmp_path / "runs" / "train" / "model.pt"
    assert check_writable(target, "--out") == target
    assert _tree(tmp_path) == []


def test_an_existing_file_may_be_replaced(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    assert check_writable(tmp_path / "report.json", "--json") == tmp_path / "report.json"
    assert _tree(tmp_path) == ["report.json"]


def test_an_existing_or_new_directory_passes(tmp_path):
    assert check_writable(tmp_path, "--out", directory=True) == tmp_path
    assert check_writable(tmp_path / "a" / "b", "--out", directory=True) == tmp_path / "a" / "b"
    assert _tree(tmp_path) == []


def test_a_relative_path_comes_back_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_writable("model.pt", "--out") == tmp_path / "model.pt"


@pytest.mark.parametrize("directory", [False, True])
def test_under_proc_is_refused_naming_the_flag_and_path(directory):
    with pytest.raises(UserError) as info:
        check_writable(Path(UNDER_PROC) / "model.pt", "--out", directory=directory)
    message = str(info.value)
    assert message.startswith(f"--out {UNDER_PROC}/model.pt cannot be written")
    assert "\n" not in message


def test_a_path_under_a_regular_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="afile is a file, not a directory"):
        check_writable(tmp_path / "afile" / "sub" / "model.pt", "--out")


def test_a_file_output_that_is_a_directory_is_refused(tmp_path):
    with pytest.raises(UserError, match="is a directory; give a file path"):
        check_writable(tmp_path, "--json")


def test_a_directory_output_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="is a file, not a directory"):
        check_writable(tmp_path / "afile", "--out", directory=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(UserError, match="Permission denied"):
            check_writable(locked / "model.pt", "--out")
    finally:
        locked.chmod(0o700)
