"""Dependencies point one way: platform -> trainables -> robust, and no module of ``auxtune`` is
in an import circle with another. The trainer never needs Ray, MLflow or Optuna, neither in its
source nor at import time; its configuration imports without torch."""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
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
        for node, _ in import_statements(ast.parse(path.read_text(), str(path))):
            for base, alias in imported_names(node, module, path.name == "__init__.py"):
                names |= {base, f"{base}.{alias}"} if alias else {base}
        found[str(path.relative_to(PACKAGE))] = names
    return found


def import_statements(tree: ast.AST, how: str = "module") -> Iterator[tuple[ast.stmt, str]]:
    """Every import statement of ``tree`` with when it runs: ``module`` (when the file is
    imported: its top level, class bodies, try blocks), ``function`` (inside a function body, a
    lazy import) or ``type-checking`` (under ``if TYPE_CHECKING:``, never at run time)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node, how
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from import_statements(node, "function" if how == "module" else how)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                yield from import_statements(ast.Module([child], []), "type-checking")
            for child in node.orelse:
                yield from import_statements(ast.Module([child], []), how)
        else:
            yield from import_statements(node, how)


def imported_names(node: ast.stmt, module: str, is_package: bool) -> list[tuple[str, str]]:
    """(module, name taken from it) of one import statement; name '' for ``import a.b``."""
    if isinstance(node, ast.Import):
        return [(alias.name, "") for alias in node.names]
    assert isinstance(node, ast.ImportFrom)
    base = _resolve(module, is_package, node.module, node.level)
    return [(base, alias.name) for alias in node.names]


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


# ------------------------------------------------------------------ no import circle, file -> file
#
# Every import counts, whenever it runs. A lazy import (inside a function) defers the cost of a
# module, not the dependency on it: the two files still need each other, cannot be read, tested or
# moved apart, and a new call at import time turns the circle into an ImportError. An import under
# ``TYPE_CHECKING`` never runs, but the type checker and every reader follow it: a circle there is
# still a circle in the design, and its cure is as cheap (move the shared piece down, or name what
# is needed with a Protocol). Two things are not imports here: ``importlib.import_module`` (a
# registry loading its plugins by module name on first lookup: the late binding that lets the
# config, below the plugins, validate their names), and the package ``__init__`` Python runs before
# a submodule (a plugin importing its siblings while its package loads is normal, not a circle).


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root`` (the directory of ``package``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join((package, *parts[: -1 if parts[-1] == "__init__" else None]))] = path
    return found


def import_graph(root: Path, package: str) -> dict[str, dict[str, str]]:
    """Module -> {module of the same package it imports: how (see :func:`import_statements`)}.

    ``from a import b`` depends on ``a.b`` when that is a module, else on ``a``.
    """
    files = module_files(root, package)
    graph: dict[str, dict[str, str]] = {}
    for module, path in files.items():
        edges = graph.setdefault(module, {})
        for node, how in import_statements(ast.parse(path.read_text(), str(path))):
            for base, name in imported_names(node, module, path.name == "__init__.py"):
                target = f"{base}.{name}" if f"{base}.{name}" in files else base
                if target in files and target != module:
                    edges.setdefault(target, how)
    return graph


def import_circles(graph: Mapping[str, Mapping[str, str]]) -> list[list[str]]:
    """One shortest circle (``[a, b, a]``) per group of modules that import each other, directly
    or not (a strongly connected component, Tarjan's algorithm), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group, member = set(), ""
            while member != node:
                member = stack.pop()
                group.add(member)
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(_shortest_circle(graph, min(group), group) for group in groups)


def _shortest_circle(
    graph: Mapping[str, Mapping[str, str]], start: str, group: set[str]
) -> list[str]:
    """Breadth first from ``start`` back to it, inside its group."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node]):
                if nxt == start:
                    return [*paths[node], start]
                if nxt in group and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"{start} is in no circle")


def describe(circle: list[str], graph: Mapping[str, Mapping[str, str]]) -> str:
    """``a -> b (function) -> a``: each step with how it imports, when not at the module's load."""
    steps = [circle[0]]
    for here, there in itertools.pairwise(circle):
        how = graph[here][there]
        steps.append(there if how == "module" else f"{there} ({how})")
    return " -> ".join(steps)


def test_the_circle_finder_finds_every_circle_and_nothing_else():
    graph = {
        "a": {"b": "module"},
        "b": {"c": "function"},
        "c": {"a": "type-checking", "d": "module"},
        "d": {},
        "e": {"f": "module", "a": "module"},
        "f": {"e": "module"},
        "g": {"d": "module", "a": "module"},
    }
    assert import_circles(graph) == [["a", "b", "c", "a"], ["e", "f", "e"]]
    assert describe(["a", "b", "c", "a"], graph) == "a -> b -> c (function) -> a (type-checking)"
    del graph["c"]["a"], graph["f"]["e"]
    assert import_circles(graph) == []


def test_the_scan_sees_lazy_relative_and_type_checking_imports(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "def load():\n    from pkg import b\n",
        "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import load\n",
        "c.py": "from . import a\nimport pkg.sub.d\n",
        "sub/__init__.py": "",
        "sub/d.py": "from ..b import TYPE_CHECKING\nimport json\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    graph = import_graph(root, "pkg")
    assert graph == {
        "pkg": {},
        "pkg.a": {"pkg.b": "function"},
        "pkg.b": {"pkg.a": "type-checking"},
        "pkg.c": {"pkg.a": "module", "pkg.sub.d": "module"},
        "pkg.sub": {},
        "pkg.sub.d": {"pkg.b": "module"},
    }
    assert import_circles(graph) == [["pkg.a", "pkg.b", "pkg.a"]]


def test_no_module_of_auxtune_is_in_an_import_circle():
    graph = import_graph(PACKAGE, "auxtune")
    assert "auxtune.robust.trainer" in graph["auxtune.trainables.function"]  # the scan reads them
    circles = [describe(circle, graph) for circle in import_circles(graph)]
    assert circles == [], "import circles:\n" + "\n".join(circles)


def test_the_configuration_imports_without_torch_or_any_plugin():
    """``auxtune --help`` and every config check import the configs: torch (seconds) and the
    plugins load only when a config is built (its task and weighting names are looked up)."""
    script = """
import json, sys
import auxtune.platform.config, auxtune.robust.config
print(json.dumps(sorted(m for m in sys.modules if m == "torch" or m.startswith((
    "auxtune.robust.tasks.", "auxtune.robust.weighting.")))))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    loaded = json.loads(result.stdout)
    assert "torch" not in loaded, loaded
    plugins = [m for m in loaded if not m.endswith((".config", ".options", ".registry"))]
    assert plugins == [], f"importing the config loaded {plugins}"


def test_the_registries_list_their_plugins_in_one_order_whatever_is_imported_first():
    """A test importing one plugin module on its own registers it first; the lists do not move."""
    script = """
import json
import auxtune.robust.tasks.rotation, auxtune.robust.weighting.aggregation
from auxtune.robust.tasks import task_names
from auxtune.robust.weighting import weighting_names
print(json.dumps([task_names(), weighting_names()]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    tasks, weightings = json.loads(result.stdout)
    assert tasks == sorted(tasks) and tasks[-1] == "rotation"
    assert weightings[:3] == ["fixed", "meta", "auto_lambda"] and weightings[-1] == "schedule"
