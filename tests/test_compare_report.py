"""The comparison's statistics, report, figures and plan, from hand-made results (fast: no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from auxtune.config import ConfigError
from auxtune.data.corruptions import CORRUPTIONS
from auxtune.errors import UserError
from auxtune.platform import stats
from auxtune.platform.compare_plan import lambda_schedule, plan_compare, retrain_choice
from auxtune.platform.comparison import Comparison, Retrain, Row
from auxtune.platform.config import load_experiment
from auxtune.platform.plots import plot_lambdas, search_curve
from auxtune.platform.report import is_report, results_dict, ui_hint, write_report
from auxtune.platform.report_tables import format_table
from auxtune.platform.search import SearchResult
from auxtune.platform.trials import TrialSummary

TASKS = ("rotation", "jigsaw")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T_975_2 = 4.302652729911275  # Student's t, 97.5 % quantile, 2 degrees of freedom (tables)


def trial(
    tid: str,
    lambdas: list[dict[str, float]],
    accs: list[float],
    exploits: tuple[tuple[str, int], ...] = (),
    **params: float,
) -> TrialSummary:
    """A finished trial; ``exploits``: (donor, epochs copied) at the epochs where they happened."""
    exploit_epochs = {copied + 1 for _, copied in exploits}
    history = [
        {
            "epoch": float(e + 1),
            "timestamp": 1000.0 + 10 * e + int(tid[-1]),
            "val_corrupt_accuracy": acc,
            **({"pbt/exploit": 1.0} if e + 1 in exploit_epochs else {}),
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
        exploits=exploits,
    )


def search(
    strategy: str, trials: list[TrialSummary], weighting: str = "fixed", population: bool = False
) -> SearchResult:
    best = max(trials, key=lambda t: t.metrics["val_corrupt_accuracy"])
    return SearchResult(
        strategy=strategy,
        experiment_name="demo-compare",
        parent_run_id=f"parent-{strategy}",
        best=best,
        trials=trials,
        trial_epochs=sum(t.epochs for t in trials),
        wall_s=12.5,
        results_path=f"/tmp/ray/{strategy}",
        budget_trial_epochs=4,
        weighting=weighting,
        population=population,
    )


def retrain(strategy: str, seed: int, c15: float, clean: float = 0.8) -> Retrain:
    metrics = {
        "clean_test_accuracy": clean,
        "c15_accuracy": c15,
        "c19_accuracy": c15 - 0.01,
        **{f"c15_s{s}_accuracy": c15 + 0.1 - 0.04 * s for s in range(1, 6)},
        **{f"c/{c}": c15 + (0.01 if i % 2 else -0.01) for i, c in enumerate(CORRUPTIONS)},
    }
    moving = [{"rotation": 0.5 + 0.1 * e, "jigsaw": 0.2} for e in range(2)]
    history = [
        {
            "epoch": float(e + 1),
            "images_per_s": 1000.0,
            **{f"lambda/{t}": v for t, v in lam.items()},
        }
        for e, lam in enumerate(moving if strategy == "meta" else moving[:1] * 2)
    ]
    return Retrain(strategy, seed, metrics, history, len(history), 3.0, "TERMINATED")


#: c15 of each row at seeds 0, 1, 2; baseline is the reference
C15 = {
    "baseline": (0.50, 0.52, 0.51),
    "fixed": (0.52, 0.56, 0.54),  # +0.02, +0.04, +0.03: better (hand-checked below)
    "meta": (0.51, 0.50, 0.55),  # +0.01, -0.02, +0.04: no detectable difference
}


@pytest.fixture
def comparison() -> Comparison:
    constant = [{"rotation": 0.5, "jigsaw": 0.2}] * 2
    moving = [{"rotation": 0.5, "jigsaw": 0.2}, {"rotation": 0.7, "jigsaw": 0.1}]
    searches = {
        "fixed": search(
            "fixed",
            [
                trial("t_0", constant, [0.2, 0.3]),
                trial("t_1", [{"rotation": 1.0, "jigsaw": 0.0}] * 2, [0.25, 0.35]),
            ],
        ),
        "meta": search(
            "meta",
            [trial("t_2", moving, [0.22, 0.4], **{"weighting.meta.meta_lr": 0.02})],
            "meta",
        ),
    }
    exp = load_experiment(None, ["tasks.names=[rotation,jigsaw]", "optim.epochs=2"])
    rows = []
    for name, values in C15.items():
        found = searches.get(name)
        config, how = (
            retrain_choice(found, TASKS, 2) if found else ({"overrides": {}}, "no auxiliary task")
        )
        retrains = tuple(retrain(name, seed, c15) for seed, c15 in enumerate(values))
        rows.append(Row(name, found, config, how, retrains, 4 if found else 0, f"row-{name}"))
    return Comparison(
        name="demo",
        created="2026-12-01T12:00:00Z",
        budget_trial_epochs=4,
        seeds=(0, 1, 2),
        rows=tuple(rows),
        reference="baseline",
        metric="c15_accuracy",
        metrics=("clean_test_accuracy", "c15_accuracy", "c19_accuracy"),
        config=exp.to_dict(),
        command="auxtune compare --config demo.yaml",
        versions={"auxtune": "0.1.0", "torch": "2.x"},
        tracking_uri="sqlite:////tmp/mlflow.db",
        experiment_name="demo-compare",
        mlflow_run_id="compare-run",
        wall_s=100.0,
        retrain_wall_s=30.0,
    )


# ---------------------------------------------------------------------------- the statistics
def test_paired_interval_matches_a_hand_computation() -> None:
    """Differences +0.02, +0.04, +0.03: mean 0.03, sd 0.01, half-width t(2) * 0.01 / sqrt(3)."""
    diff = stats.paired_difference(dict(enumerate(C15["fixed"])), dict(enumerate(C15["baseline"])))
    assert diff is not None and diff.n == 3
    half = T_975_2 * 0.01 / 3**0.5  # 0.02484
    assert diff.mean_diff == pytest.approx(0.03)
    assert diff.ci95 == pytest.approx((0.03 - half, 0.03 + half))
    assert diff.verdict == "better"
    # +0.01, -0.02, +0.04: sd 0.03, the interval (-0.0645, +0.0845) covers zero
    meta = stats.paired_difference(dict(enumerate(C15["meta"])), dict(enumerate(C15["baseline"])))
    assert meta is not None and meta.ci95 is not None
    assert meta.ci95[0] == pytest.approx(0.01 - T_975_2 * 0.03 / 3**0.5)
    assert meta.verdict == "no detectable difference"
    worse = stats.paired_difference({0: 0.4, 1: 0.41}, {0: 0.5, 1: 0.52})
    assert worse is not None and worse.verdict == "worse"
    # pairs are made by seed, not by position: a missing seed is left out of both sides
    partial = stats.paired_difference({0: 0.6, 2: 0.7}, {0: 0.5, 1: 0.0, 2: 0.6})
    assert partial is not None and partial.n == 2 and partial.mean_diff == pytest.approx(0.1)
    one = stats.paired_difference({0: 0.6}, {0: 0.5})
    assert one is not None and one.ci95 is None and one.verdict.startswith("undetermined")


def test_estimate_is_a_t_interval() -> None:
    found = stats.estimate([0.50, 0.52, 0.51])
    assert found is not None and found.mean == pytest.approx(0.51)
    assert found.half_width == pytest.approx(T_975_2 * 0.01 / 3**0.5)
    assert stats.estimate([0.5]) == stats.Estimate(0.5, None, 1)
    assert stats.estimate([]) is None


def test_comparison_pairs_rows_with_the_reference(comparison: Comparison) -> None:
    fixed, meta = comparison.row("fixed"), comparison.row("meta")
    assert comparison.versus_reference(comparison.row("baseline"), "c15_accuracy") is None
    assert comparison.versus_reference(fixed, "c15_accuracy").verdict == "better"  # type: ignore[union-attr]
    assert comparison.versus_reference(meta, "c15_accuracy").verdict == "no detectable difference"  # type: ignore[union-attr]
    best, second, diff = comparison.leader()  # type: ignore[misc]
    assert (best.strategy, second.strategy) == ("fixed", "meta")
    assert diff.verdict == "no detectable difference"  # +0.01, +0.06, -0.01


# ------------------------------------------------------------------------- what is retrained
def test_retrain_choice_per_strategy(comparison: Comparison) -> None:
    fixed, meta = comparison.row("fixed"), comparison.row("meta")
    assert fixed.retrained == {
        "lambda/rotation": 1.0,
        "lambda/jigsaw": 0.0,
        "overrides": {"weighting.name": "fixed"},
    }
    assert meta.retrained["overrides"] == {"weighting.name": "meta"}
    assert meta.retrained["weighting.meta.meta_lr"] == 0.02  # its searched hyperparameter
    assert meta.retrained["lambda/rotation"] == 0.5  # the initial lambdas, learned again online


def test_pbt_retrains_the_schedule_of_the_best_lineage() -> None:
    """Trial b copied a's model after epoch 1 (an exploit) and perturbed its lambdas: the final
    model of b was trained with a's lambdas in epoch 1 and b's own in epochs 2 and 3."""
    a = trial("t_0", [{"rotation": 0.1, "jigsaw": 0.9}] * 3, [0.5, 0.6, 0.7])
    b = trial(
        "t_1",
        [
            {"rotation": 0.8, "jigsaw": 0.8},
            {"rotation": 0.3, "jigsaw": 0.4},
            {"rotation": 0.2, "jigsaw": 0.4},
        ],
        [0.1, 0.65, 0.9],
        exploits=(("t_0", 1),),
    )
    schedule = lambda_schedule(b, [a, b], TASKS, 3)
    assert schedule == [
        {"rotation": 0.1, "jigsaw": 0.9},  # a's epoch 1: b's own epoch 1 was thrown away
        {"rotation": 0.3, "jigsaw": 0.4},
        {"rotation": 0.2, "jigsaw": 0.4},
    ]
    config, how = retrain_choice(search("pbt", [a, b], population=True), TASKS, 3)
    assert config == {
        "overrides": {"weighting.name": "schedule", "weighting.schedule.per_epoch": schedule}
    }
    assert "schedule of best trial t_1" in how and "1 exploit" in how
    with pytest.raises(ValueError, match="no lambdas recorded for epochs"):
        lambda_schedule(a, [a], TASKS, 4)


# --------------------------------------------------------------------------------- the report
def test_search_curve_orders_by_time_and_counts_trial_epochs(comparison: Comparison) -> None:
    found = comparison.row("fixed").search
    assert found is not None
    spent, values, best = search_curve(found, "val_corrupt_accuracy")
    assert spent.tolist() == [1, 2, 3, 4]
    assert values.tolist() == [0.2, 0.25, 0.3, 0.35]  # interleaved by timestamp
    assert best.tolist() == [0.2, 0.25, 0.3, 0.35]


def test_table_lists_every_row_with_intervals_and_verdicts(comparison: Comparison) -> None:
    table = format_table(comparison)
    lines = table.splitlines()
    for line, strategy in zip(lines[2:5], ("baseline", "fixed", "meta")):
        assert line.startswith(strategy)
    half = 100 * T_975_2 * 0.02 / 3**0.5  # fixed's c15: 0.52, 0.56, 0.54 (sd 0.02)
    assert f"54.00 ± {half:.2f}" in table  # in percent, with its 95 % half-width
    assert "+3.00 [+0.52, +5.48] better" in table
    assert "no detectable difference" in lines[4]
    # the leader's interval overlaps the runner-up's: the report must say so, not name a winner
    assert "NOT a detectable winner" in table
    assert (
        "Against baseline on c15_accuracy -- better: fixed; no detectable difference: meta" in table
    )


def test_results_json_contract(comparison: Comparison) -> None:
    results = json.loads(json.dumps(results_dict(comparison), allow_nan=False))
    assert [s["strategy"] for s in results["strategies"]] == ["baseline", "fixed", "meta"]
    fixed = results["strategies"][1]
    assert {
        "strategy",
        "trials",
        "trial_epochs",
        "budget_trial_epochs",
        "retrain",
        "vs_baseline",
    } <= set(fixed)
    assert (fixed["trials"], fixed["trial_epochs"], fixed["budget_trial_epochs"]) == (2, 4, 4)
    retrain = fixed["retrain"]
    assert retrain["seeds"] == [0, 1, 2]
    assert retrain["c15_accuracy"] == list(C15["fixed"])
    assert retrain["clean_test_accuracy"] == [0.8, 0.8, 0.8]
    assert len(retrain["c19_accuracy"]) == 3
    for metric in ("clean_test_accuracy", "c15_accuracy", "c19_accuracy"):
        entry = fixed["vs_baseline"][metric]
        assert set(entry) >= {"mean_diff", "ci95", "verdict"} and len(entry["ci95"]) == 2
    assert fixed["vs_baseline"]["c15_accuracy"]["verdict"] == "better"
    assert results["strategies"][0]["vs_baseline"] == {}  # the reference itself
    assert results["strategies"][0]["budget_trial_epochs"] == 0
    assert results["leader"]["strategy"] == "fixed"


def test_report_directory(tmp_path: Path, comparison: Comparison) -> None:
    out = write_report(comparison, tmp_path / "report")
    assert is_report(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging left behind
    text = (out / "report.md").read_text()
    for strategy in ("baseline", "fixed", "meta"):
        assert f"| {strategy} |" in text
    assert "## Accuracy by severity" in text and "severity 5" in text
    assert "protocol `holdout`" in text and "auxtune ui --port 5000" in text
    assert "auxtune compare --config demo.yaml" in text
    figures = ("corruption_vs_compute.png", "per_corruption.png", "per_severity.png")
    for name in (*figures, "lambda_trajectories.png"):
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

    still = replace(comparison, rows=(comparison.row("baseline"), comparison.row("fixed")))
    assert plot_lambdas(still, tmp_path / "l.png") is None
    assert not (tmp_path / "l.png").exists()


# ----------------------------------------------------------------------------------- the plan
def test_plan_rows_budget_and_seeds() -> None:
    exp = load_experiment(None, ["optim.epochs=3", "search.num_trials=4", "compare.seeds=2"])
    plan = plan_compare(exp)
    assert plan.budget == 12 and plan.seeds == (0, 1)
    assert plan.rows == ("baseline", "fixed", "optuna", "pbt")
    # the control is always there, first, even when not listed
    listed = plan_compare(load_experiment(None, ["compare.strategies=[meta,fixed]"]))
    assert listed.rows == ("baseline", "meta", "fixed") and listed.searched == ("meta", "fixed")
    with pytest.raises(
        ConfigError, match=r"compare.budget = 2 trial-epochs is less than one trial"
    ):
        plan_compare(load_experiment(None, ["optim.epochs=3", "compare.budget=2"]))
    with pytest.raises(ConfigError, match="unknown strategy 'grid'; valid: fixed"):
        load_experiment(None, ["compare.strategies=fixed,grid"])
    with pytest.raises(ConfigError, match="duplicates"):
        load_experiment(None, ["compare.strategies=meta,meta"])


def test_variants_are_rows_validated_when_read() -> None:
    exp = load_experiment(
        None,
        [
            "compare.variants={adv: {optim: {lr: 0.05}}, rot: {tasks.names: [rotation]}}",
            "compare.strategies=[rot,adv]",
            "compare.reference=rot",
        ],
    )
    assert plan_compare(exp).rows == ("rot", "adv")
    assert exp.row_config("adv").optim.lr == 0.05
    assert exp.row_config("baseline").tasks.names == ()
    with pytest.raises(ConfigError, match=r"compare.variants.bad: optim.lr = -1.0 must be > 0"):
        load_experiment(None, ["compare.variants={bad: {optim.lr: -1}}"])
    with pytest.raises(ConfigError, match=r"compare.metric: 'c15' is not a metric"):
        load_experiment(None, ["compare.metric=c15"])


def test_ui_hint_names_the_store_unless_it_is_the_default() -> None:
    from auxtune.platform.tracking import resolve_tracking

    default = resolve_tracking("runs").uri
    assert ui_hint(default) == "auxtune ui --port 5000   # then open http://127.0.0.1:5000"
    other = ui_hint("sqlite:////elsewhere/mlflow.db")
    assert other.startswith("auxtune ui --port 5000 --tracking-uri sqlite:////elsewhere/mlflow.db")
    # `auxtune ui` refuses a tracking server (it has its own UI): point the browser at it
    assert ui_hint("http://mlflow.example:5000") == "open http://mlflow.example:5000 in a browser"
    # with the experiment: its runs table (MLflow 3.17 opens experiments on the GenAI overview)
    link = "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"
    assert ui_hint(default, "7").endswith(f"then open {link}")
