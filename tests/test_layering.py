"""Dependencies point one way: platform -> trainables -> robust. The trainer never needs Ray,
MLflow or Optuna, neither in its source nor at import time."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import auxtune

PACKAGE = Path(auxtune.__file__).parent
HEAVY = {"ray", "mlflow", "optuna"}


def imported_modules(package: str) -> dict[str, set[str]]:
    """Absolute names of every module imported anywhere in ``auxtune.<package>``, per file."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / package).rglob("*.py")):
        module = "auxtune." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", node.module, node.level)
                names.add(base)
                names |= {f"{base}.{alias.name}" for alias in node.names}
        found[str(path.relative_to(PACKAGE))] = names
    return found


def _resolve(module: str, is_package: bool, target: str | None, level: int) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - (level - 1)]
    return ".".join([*anchor, target] if target else anchor)


def offenders(package: str, forbidden: set[str]) -> dict[str, list[str]]:
    bad = {}
    for path, names in imported_modules(package).items():
        hits = sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))
        if hits:
            bad[path] = hits
    return bad


def test_the_scan_sees_the_trainer_modules():
    names = imported_modules("robust")
    assert "robust/trainer.py" in names and "robust/tasks/rotation.py" in names
    assert "auxtune.robust.training.train_step" in names["robust/trainer.py"]
    assert "auxtune.robust.tasks.base.ClassificationTask" in names["robust/tasks/rotation.py"]


def test_relative_imports_are_resolved():
    assert _resolve("auxtune.robust.trainer", False, "model", 1) == "auxtune.robust.model"
    assert _resolve("auxtune.robust.tasks", True, "base", 1) == "auxtune.robust.tasks.base"
    assert _resolve("auxtune.robust.tasks.jigsaw", False, None, 2) == "auxtune.robust"


def test_robust_source_imports_no_ray_mlflow_or_optuna():
    assert offenders("robust", HEAVY) == {}


def test_robust_does_not_import_the_layers_above_it():
    upper = {"auxtune.trainables", "auxtune.platform", "auxtune.search_spaces"}
    assert offenders("robust", upper) == {}


def test_trainables_do_not_import_the_platform():
    if not (PACKAGE / "trainables").is_dir():
        pytest.skip("no trainables package yet")
    assert offenders("trainables", {"auxtune.platform"}) == {}


def test_importing_the_whole_trainer_loads_no_ray_mlflow_or_optuna():
    script = """
import importlib, json, pkgutil, sys
import auxtune.robust
for info in pkgutil.walk_packages(auxtune.robust.__path__, "auxtune.robust."):
    importlib.import_module(info.name)
print(json.dumps({
    "robust": sorted(m for m in sys.modules if m.startswith("auxtune.robust.")),
    "heavy": sorted({m.split(".")[0] for m in sys.modules} & {"ray", "mlflow", "optuna"}),
}))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    loaded = json.loads(result.stdout)
    assert "auxtune.robust.trainer" in loaded["robust"]  # the walk imported every submodule
    assert "auxtune.robust.tasks.jigsaw" in loaded["robust"]
    assert loaded["heavy"] == [], f"importing auxtune.robust loaded {loaded['heavy']}"
