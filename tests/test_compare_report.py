"""The comparison's report, figures and plan, from hand-made search results (fast: no Ray)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from PIL import Image

from auxtune.config import ConfigError
from auxtune.data.corruptions import CORRUPTIONS
from auxtune.errors import UserError
from auxtune.platform.compare import (
    Comparison,
    Retrain,
    StrategyOutcome,
    final_lambdas,
    plan_compare,
    retrain_choice,
)
from auxtune.platform.config import load_experiment
from auxtune.platform.plots import plot_lambdas, search_curve
from auxtune.platform.report import format_table, is_report, ui_hint, write_report
from auxtune.platform.search import SearchResult, TrialSummary

TASKS = ("rotation", "jigsaw")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def trial(
    tid: str, lambdas: list[dict[str, float]], accs: list[float], **params: float
) -> TrialSummary:
    history = [
        {
            "epoch": float(e + 1),
            "timestamp": 1000.0 + 10 * e + int(tid[-1]),
            "val_corrupt_accuracy": acc,
            "images_per_s": 800.0 if "meta_lr" in params else 1000.0,
            **{f"lambda/{t}": v for t, v in lam.items()},
        }
        for e, (lam, acc) in enumerate(zip(lambdas, accs))
    ]
    return TrialSummary(
        trial_id=tid,
        params={**{f"lambda/{t}": v for t, v in lambdas[0].items()}, **params},
        metrics=dict(history[-1]),
        history=history,
        epochs=len(history),
        seconds=2.0 * len(history),
        status="TERMINATED",
        error=None,
        mlflow_run_id=f"run-{tid}",
        node_id=None,
    )


def search(strategy: str, trials: list[TrialSummary]) -> SearchResult:
    best = max(trials, key=lambda t: t.metrics["val_corrupt_accuracy"])
    return SearchResult(
        strategy=strategy,
        experiment_name=f"demo-compare-{strategy}",
        parent_run_id=f"parent-{strategy}",
        best=best,
        trials=trials,
        trial_epochs=sum(t.epochs for t in trials),
        wall_s=12.5,
        results_path=f"/tmp/ray/{strategy}",
    )


def retrain(strategy: str, seed: int, c15: float, lambdas: list[dict[str, float]]) -> Retrain:
    per = {c: c15 + (0.01 if i % 2 else -0.01) for i, c in enumerate(CORRUPTIONS)}
    history = [
        {"epoch": float(e + 1), "test_accuracy": 0.5, **{f"lambda/{t}": v for t, v in lam.items()}}
        for e, lam in enumerate(lambdas)
    ]
    return Retrain(
        strategy=strategy,
        seed=seed,
        clean_accuracy=0.5 + seed / 100,
        c15=c15,
        c19=c15 - 0.01,
        per_corruption=per,
        history=history,
        epochs=len(history),
        seconds=3.0,
        status="TERMINATED",
    )


@pytest.fixture
def comparison() -> Comparison:
    constant = [{"rotation": 0.5, "jigsaw": 0.2}] * 2
    fixed = search(
        "fixed",
        [
            trial("t_0", constant, [0.2, 0.3]),
            trial("t_1", [{"rotation": 1.0, "jigsaw": 0.0}] * 2, [0.25, 0.35]),
        ],
    )
    moving = [{"rotation": 0.5, "jigsaw": 0.2}, {"rotation": 0.7, "jigsaw": 0.1}]
    meta = search("meta", [trial("t_2", moving, [0.22, 0.4], meta_lr=0.02)])
    pbt = search("pbt", [trial("t_3", moving, [0.3, 0.33]), trial("t_4", constant, [0.1, 0.2])])
    exp = load_experiment(None, ["tasks.names=[rotation,jigsaw]", "optim.epochs=2"])
    outcomes = []
    for result, c15 in ((fixed, 0.30), (meta, 0.34), (pbt, 0.31)):
        config, how = retrain_choice(result.strategy, result.best, TASKS)
        retrains = (
            retrain(result.strategy, 0, c15, moving),
            retrain(result.strategy, 1, c15 + 0.02, moving),
        )
        outcomes.append(StrategyOutcome(result.strategy, result, config, how, retrains))
    return Comparison(
        name="demo",
        created="2026-11-23T12:00:00Z",
        budget_trial_epochs=4,
        seeds=(0, 1),
        strategies=tuple(outcomes),
        config=exp.to_dict(),
        command="auxtune compare --config demo.yaml",
        versions={"auxtune": "0.1.0", "torch": "2.x"},
        tracking_uri="sqlite:////tmp/mlflow.db",
        experiment_name="demo-compare",
        mlflow_run_id="compare-run",
        wall_s=100.0,
        retrain_wall_s=30.0,
    )


def test_retrain_choice_per_strategy(comparison: Comparison) -> None:
    fixed, meta, pbt = comparison.strategies
    assert fixed.retrained == {
        "lambda": {"rotation": 1.0, "jigsaw": 0.0},
        "weighting.name": "fixed",
    }
    assert meta.retrained["weighting.name"] == "meta"
    assert meta.retrained["meta_lr"] == 0.02
    assert meta.retrained["lambda"] == {"rotation": 0.5, "jigsaw": 0.2}  # initial, learned again
    assert pbt.retrained["lambda"] == {"rotation": 0.7, "jigsaw": 0.1}  # final, not initial
    assert "final lambdas" in pbt.how
    assert final_lambdas(pbt.search.best, TASKS) == {"rotation": 0.7, "jigsaw": 0.1}


def test_statistics_over_seeds(comparison: Comparison) -> None:
    meta = comparison.strategies[1]
    mean, std = meta.stat("c15")
    assert mean == pytest.approx(0.35)
    assert std == pytest.approx(math.sqrt(2) * 0.01)  # sample std of {0.34, 0.36}
    assert comparison.best() is meta
    steps = comparison.step_seconds()
    batch = comparison.config["optim"]["batch_size"]
    assert steps["fixed"] == pytest.approx(batch / 1000)
    assert steps["meta"] == pytest.approx(batch / 800)
    assert comparison.meta_extra_step_seconds() == pytest.approx(batch / 800 - batch / 1000)


def test_search_curve_orders_by_time_and_counts_trial_epochs(comparison: Comparison) -> None:
    spent, values, best = search_curve(comparison.strategies[0].search)
    assert spent.tolist() == [1, 2, 3, 4]
    assert values.tolist() == [0.2, 0.25, 0.3, 0.35]  # interleaved by timestamp
    assert best.tolist() == [0.2, 0.25, 0.3, 0.35]


def test_table_lists_every_strategy(comparison: Comparison) -> None:
    table = format_table(comparison)
    lines = table.splitlines()
    assert len(lines) == 2 + 3
    for line, strategy in zip(lines[2:], ("fixed", "meta", "pbt")):
        assert line.startswith(strategy)
    assert "35.00 ± 1.41" in table  # meta's c15 in percent


def test_report_directory(tmp_path: Path, comparison: Comparison) -> None:
    out = write_report(comparison, tmp_path / "report")
    assert is_report(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging left behind
    text = (out / "report.md").read_text()
    for strategy in ("fixed", "meta", "pbt"):
        assert f"| {strategy} |" in text
    assert "protocol `holdout`" in text and "auxtune ui --port 5000" in text
    assert "auxtune compare --config demo.yaml" in text
    results = json.loads((out / "results.json").read_text())
    assert results["best_strategy"] == "meta"
    assert [s["strategy"] for s in results["strategies"]] == ["fixed", "meta", "pbt"]
    assert results["strategies"][1]["summary"]["c15"]["mean"] == pytest.approx(0.35)
    assert set(results["strategies"][0]["summary"]["per_corruption"]) == set(CORRUPTIONS)
    for name in ("corruption_vs_compute.png", "per_corruption.png", "lambda_trajectories.png"):
        assert f"]({name})" in text
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(out / name) as image:
            image.verify()
            assert image.size[0] > 300 and image.size[1] > 200
    assert load_experiment(out / "config.yaml").compare.seeds == 3  # a loadable config


@pytest.fixture
def no_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip drawing (a second each) where a test is about the directory, not the figures."""
    monkeypatch.setattr("auxtune.platform.report.draw_all", lambda comparison, directory: [])


@pytest.mark.usefixtures("no_figures")
def test_report_replaces_an_earlier_report_only(tmp_path: Path, comparison: Comparison) -> None:
    out = write_report(comparison, tmp_path / "r")
    (out / "stale.png").write_bytes(b"old")
    write_report(comparison, out)  # an earlier report is replaced as a whole
    assert is_report(out) and not (out / "stale.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="not an auxtune compare report"):
        write_report(comparison, other)
    assert (other / "mine.txt").read_text() == "keep"


@pytest.mark.usefixtures("no_figures")
def test_interrupted_report_leaves_nothing(
    tmp_path: Path, comparison: Comparison, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("auxtune.platform.report.render_markdown", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(comparison, tmp_path / "r")
    assert list(tmp_path.iterdir()) == []


def test_no_lambda_plot_without_moving_lambdas(tmp_path: Path, comparison: Comparison) -> None:
    from dataclasses import replace

    only_fixed = replace(comparison, strategies=comparison.strategies[:1])
    assert plot_lambdas(only_fixed, tmp_path / "l.png") is None
    assert not (tmp_path / "l.png").exists()


def test_plan_budget_and_seeds() -> None:
    exp = load_experiment(None, ["optim.epochs=3", "search.num_trials=4", "compare.seeds=2"])
    plan = plan_compare(exp)
    assert plan.budget == 12 and plan.seeds == (0, 1)
    with pytest.raises(
        ConfigError, match=r"compare.budget = 2 trial-epochs is less than one trial"
    ):
        plan_compare(load_experiment(None, ["optim.epochs=3", "compare.budget=2"]))
    with pytest.raises(ConfigError, match="unknown strategy 'grid'; valid strategies: fixed"):
        load_experiment(None, ["compare.strategies=fixed,grid"])
    with pytest.raises(ConfigError, match="duplicates"):
        load_experiment(None, ["compare.strategies=meta,meta"])


def test_ui_hint_names_the_store_unless_it_is_the_default() -> None:
    from auxtune.platform.tracking import resolve_tracking

    default = resolve_tracking("runs").uri
    assert ui_hint(default) == "auxtune ui --port 5000   # then open http://127.0.0.1:5000"
    other = ui_hint("sqlite:////elsewhere/mlflow.db")
    assert other.startswith("auxtune ui --port 5000 --tracking-uri sqlite:////elsewhere/mlflow.db")
    # `auxtune ui` refuses a tracking server (it has its own UI): point the browser at it
    assert ui_hint("http://mlflow.example:5000") == "open http://mlflow.example:5000 in a browser"
