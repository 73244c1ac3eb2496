"""The examples in the public modules' docstrings run and pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

PUBLIC_MODULES = (
    "auxtune.config",
    "auxtune.data.cifar",
    "auxtune.data.label_noise",
    "auxtune.data.ood",
    "auxtune.platform.budget",
    "auxtune.platform.comparison",
    "auxtune.platform.config",
    "auxtune.platform.invocation",
    "auxtune.platform.locks",
    "auxtune.platform.outputs",
    "auxtune.platform.preflight",
    "auxtune.platform.report_tables",
    "auxtune.platform.retrains",
    "auxtune.platform.stats",
    "auxtune.platform.svg",
    "auxtune.platform.tracking.datasets",
    "auxtune.platform.tracking.ledger",
    "auxtune.platform.tracking.links",
    "auxtune.platform.tracking.recovery",
    "auxtune.ray_connect",
    "auxtune.robust.adversarial_config",
    "auxtune.robust.backbones",
    "auxtune.robust.classifier",
    "auxtune.robust.config",
    "auxtune.robust.device",
    "auxtune.robust.gold_loss",
    "auxtune.robust.ood",
    "auxtune.robust.tasks",
    "auxtune.robust.tasks.config",
    "auxtune.robust.tasks.registry",
    "auxtune.robust.trainer",
    "auxtune.robust.weighting",
    "auxtune.robust.weighting.config",
    "auxtune.robust.weighting.options",
    "auxtune.robust.weighting.registry",
    "auxtune.search_spaces",
    "auxtune.trainables.config",
    "auxtune.trainables.metrics",
)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_docstring_examples_pass(name):
    results = doctest.testmod(importlib.import_module(name), verbose=False, report=True)
    assert results.attempted > 0, f"{name} has no docstring examples"
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"
