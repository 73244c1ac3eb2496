"""The examples in the public modules' docstrings run and pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

PUBLIC_MODULES = (
    "auxtune.config",
    "auxtune.robust.backbones",
    "auxtune.robust.tasks",
    "auxtune.robust.trainer",
)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_docstring_examples_pass(name):
    results = doctest.testmod(importlib.import_module(name), verbose=False, report=True)
    assert results.attempted > 0, f"{name} has no docstring examples"
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"
