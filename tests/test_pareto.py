"""Objectives of a search: the Pareto front, its config checks, the multi-objective Optuna plan, the
epsilon sweep and front sections of the compare report (fast: no Ray run)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from auxtune.config import ConfigError
from auxtune.platform.comparison import Comparison, Retrain, Row
from auxtune.platform.config import load_experiment
from auxtune.platform.pareto import dominates, format_front, front_of, pareto_indices
from auxtune.platform.plots import epsilon_sweep, plot_pareto
from auxtune.platform.report import render_markdown, results_dict, write_report
from auxtune.platform.report_sections import epsilon_table
from auxtune.platform.search import SearchResult
from auxtune.platform.trials import TrialSummary

OBJECTIVES = ("val_accuracy", "val_corrupt_accuracy", "val_adv_accuracy")
ADVERSARIAL = ("adversarial.evaluate=true",)


def trial(tid: str, values: tuple[float, ...], epochs: int = 2, status: str = "TERMINATED"):
    metrics = dict(zip(OBJECTIVES, values))
    return TrialSummary(
        tid, {"lambda/rotation": 0.1 * len(tid)}, metrics, [metrics] * epochs, epochs, 1.0,
        status, None, None, None,
    )  # fmt: skip


# ------------------------------------------------------------------------------ the front
def test_front_against_brute_force_definition() -> None:
    """On random points (with ties) a point is on the front exactly when nothing dominates it."""
    rng = random.Random(0)
    for _ in range(50):
        points = [tuple(rng.choice((0.1, 0.2, 0.3)) for _ in range(3)) for _ in range(12)]
        front = set(pareto_indices(points))
        for i, p in enumerate(points):
            beaten = any(
                all(q[k] >= p[k] for k in range(3)) and q != p for q in points
            )  # same as dominates: >= everywhere and not equal
            assert (i in front) == (not beaten)


def test_dominance_is_strict_and_ties_stay_on_the_front() -> None:
    assert dominates((0.5, 0.5), (0.5, 0.4)) and not dominates((0.5, 0.5), (0.5, 0.5))
    assert not dominates((0.6, 0.1), (0.1, 0.6))
    assert pareto_indices([(0.5, 0.5), (0.5, 0.5), (0.4, 0.5)]) == [0, 1]


def test_front_of_trials_skips_failed_short_and_unscored_trials() -> None:
    trials = [
        trial("a", (0.9, 0.5, 0.1)),
        trial("b", (0.8, 0.6, 0.3)),
        trial("c", (0.7, 0.4, 0.2)),  # dominated by b
        trial("d", (0.99, 0.99, 0.99), epochs=1),  # stopped early: not compared
        trial("e", (1.0, 1.0, 1.0), status="ERROR"),
        trial("f", (0.95, float("nan"), 0.5)),
    ]
    front = front_of(trials, OBJECTIVES)
    assert front is not None
    assert [t.trial_id for t in front.members] == ["a", "b"]  # best val_accuracy first
    assert [t.trial_id for t in front.others] == ["c"]
    assert front.as_dict()["members"][1] == {
        "trial_id": "b", "params": {"lambda/rotation": 0.1}, **dict(zip(OBJECTIVES, (0.8, 0.6, 0.3)))
    }  # fmt: skip
    assert front_of(trials, OBJECTIVES[:1]) is None  # one objective has no front
    text = format_front(front)
    assert "2 of 3 trials" in text and "rotation=0.1" in text and "80.00" in text


def test_plot_pareto_draws_every_pair_of_objectives(tmp_path: Path) -> None:
    from PIL import Image

    trials = [trial(str(i), v) for i, v in enumerate(itertools.product((0.2, 0.6), repeat=3))]
    front = front_of(trials, OBJECTIVES)
    assert front is not None and [t.trial_id for t in front.members] == ["7"]
    three = Image.open(plot_pareto(front, tmp_path / "three.png"))
    two = Image.open(plot_pareto(front_of(trials, OBJECTIVES[:2]), tmp_path / "two.png"))  # type: ignore[arg-type]
    assert three.width > 2.5 * two.width  # three panels against one


# ----------------------------------------------------------------------------- the config
def test_objectives_are_checked_when_the_config_is_read() -> None:
    objectives = f"search.objectives=[{','.join(OBJECTIVES)}]"
    exp = load_experiment(None, [*ADVERSARIAL, objectives, "search.metric=val_adv_accuracy"])
    assert exp.search.objectives == OBJECTIVES
    with pytest.raises(ConfigError, match=r"search.objectives: 'val_adv_accuracy' is not reported"):
        load_experiment(None, [objectives])  # no adversarial section: no val_adv_accuracy
    with pytest.raises(ConfigError, match=r"search.objectives: 'c15_accuracy'"):
        load_experiment(None, ["search.objectives=[val_accuracy,c15_accuracy]"])  # test metric
    with pytest.raises(ConfigError, match="two or more different"):
        load_experiment(None, ["search.objectives=[val_accuracy]"])
    with pytest.raises(ConfigError, match=r"search.metric = 'val_corrupt_accuracy' must be one of"):
        load_experiment(None, [*ADVERSARIAL, "search.objectives=[val_accuracy,val_adv_accuracy]"])


def test_adversarial_metrics_are_objectives_of_search_and_compare() -> None:
    exp = load_experiment(
        None,
        [*ADVERSARIAL, "search.metric=val_adv_accuracy", "compare.metric=adv_pgd20_accuracy"],
    )
    assert exp.search.metric == "val_adv_accuracy"
    with pytest.raises(ConfigError, match=r"search.metric = 'val_adv_accuracy'"):
        load_experiment(None, ["search.metric=val_adv_accuracy"])
    with pytest.raises(ConfigError, match=r"compare.metric: 'adv_pgd20_accuracy'"):
        load_experiment(None, ["compare.metric=adv_pgd20_accuracy"])


def test_optuna_plan_is_multi_objective_without_early_stopping() -> None:
    from ray.tune.schedulers import ASHAScheduler

    from auxtune.search_spaces import build_plan

    objectives = f"search.objectives=[{','.join(OBJECTIVES)}]"
    exp = load_experiment(None, [*ADVERSARIAL, objectives, "search.metric=val_adv_accuracy"])
    plan = build_plan("optuna", exp, 3)
    assert plan.search_alg.metric == list(OBJECTIVES)
    assert plan.search_alg.mode == ["max"] * 3
    assert plan.scheduler is None and "multi-objective" in plan.notes[0]
    single = build_plan("optuna", load_experiment(None), 3)
    assert single.search_alg.metric == "val_corrupt_accuracy"
    assert isinstance(single.scheduler, ASHAScheduler)


# ----------------------------------------------------------------------------- the report
SWEEP = {0.0: (0.9, 0.8), 1.0: (0.5, 0.4), 2.0: (0.1, 0.05)}  # multiple -> accuracy by seed


def retrain(row: str, seed: int, shift: float) -> Retrain:
    metrics = {f"adv/eps_{m:g}x_accuracy": v[seed] - shift for m, v in SWEEP.items()}
    metrics.update(clean_test_accuracy=0.9, c15_accuracy=0.7, val_corrupt_accuracy=0.6)
    return Retrain(row, seed, metrics, [], 2, 1.0, "TERMINATED")


def comparison(with_front: bool = True) -> Comparison:
    trials = [
        trial("t1", (0.9, 0.5, 0.1)),
        trial("t2", (0.8, 0.6, 0.3)),
        trial("t3", (0.7, 0.4, 0.2)),
    ]
    search = SearchResult(
        "optuna", "x-compare", "p", trials[0], trials, 6, 1.0, "/tmp/none",
        front=front_of(trials, OBJECTIVES) if with_front else None,
    )  # fmt: skip
    rows = (
        Row("baseline", None, {"overrides": {}}, "no aux", (retrain("baseline", 0, 0), retrain("baseline", 1, 0)), 0),
        Row("optuna", search, {"lambda": {"rotation": 0.2}}, "best", (retrain("optuna", 0, 0.05), retrain("optuna", 1, 0.05)), 6),
        Row("strong", None, {"overrides": {"adversarial.epsilon": 0.07}}, "variant", (retrain("strong", 0, 0.1), retrain("strong", 1, 0.1)), 0),
    )  # fmt: skip
    config = load_experiment(None, ADVERSARIAL).to_dict()
    return Comparison(
        "x", "2026-01-01T00:00:00Z", 6, (0, 1), rows, "baseline", "c15_accuracy",
        ("clean_test_accuracy", "c15_accuracy"), config, "", {}, "sqlite:///x.db", "x-compare",
        None, 1.0, 1.0,
    )  # fmt: skip


def test_epsilon_sweep_is_the_mean_over_seeds_with_its_interval() -> None:
    row = comparison().rows[1]
    points = epsilon_sweep(row)
    assert list(points) == [0.0, 1.0, 2.0]
    mean, half = points[1.0]
    assert mean == pytest.approx(0.45 - 0.05)
    assert half == pytest.approx(12.706204736 * 0.05, rel=1e-6)  # t(0.975, 1 df) x sem 0.05
    table = epsilon_table(comparison())
    assert table is not None
    assert "| strong | 0.07 |" in table and "| baseline | 0.03137 |" in table
    assert "2x" in table and "40.00 ± " in table


def test_report_shows_the_sweep_and_the_front(tmp_path: Path) -> None:
    c = comparison()
    text = render_markdown(c, ["epsilon_sweep.png", "pareto_optuna.png", "per_severity.png"])
    assert "## Accuracy under attack by test epsilon" in text
    assert "## Pareto front of the optuna search" in text
    assert "2 of 3 trials are non-dominated" in text
    assert "| t2 | rotation=0.2 | 80.00 | 60.00 | 30.00 |" in text
    assert text.count("pareto_optuna.png") == 2  # shown in its section, not again under Figures
    assert results_dict(c)["strategies"][1]["search"]["pareto_front"]["dominated"] == ["t3"]
    out = write_report(c, tmp_path / "report")
    assert (out / "epsilon_sweep.png").is_file() and (out / "pareto_optuna.png").is_file()


def test_report_without_sweep_or_front_has_neither_section(tmp_path: Path) -> None:
    c = comparison(with_front=False)
    rows = tuple(
        Row(r.strategy, r.search, r.retrained, r.how, tuple(
            Retrain(x.strategy, x.seed, {"c15_accuracy": 0.7}, [], 2, 1.0, "TERMINATED")
            for x in r.retrains), r.budget_trial_epochs)
        for r in c.rows
    )  # fmt: skip
    import dataclasses

    bare = dataclasses.replace(c, rows=rows)
    text = render_markdown(bare, [])
    assert "test epsilon" not in text and "Pareto" not in text
    out = write_report(bare, tmp_path / "bare")
    assert not (out / "epsilon_sweep.png").exists()


def test_report_lists_the_masking_checks_seed_by_seed() -> None:
    """A seed whose PGD-100 is weaker than PGD-20, or whose sweep rises, fails that check by name;
    rows without PGD-20 and PGD-100 are not listed."""
    import dataclasses

    c = comparison()
    attacks = [
        {"adv_pgd20_accuracy": 0.5, "adv_pgd100_accuracy": 0.49, "adv_apgd_accuracy": 0.47},
        {"adv_pgd20_accuracy": 0.5, "adv_pgd100_accuracy": 0.6, "adv_apgd_accuracy": 0.45},
    ]
    row = c.rows[1]
    retrains = tuple(
        dataclasses.replace(r, metrics={**r.metrics, **extra})
        for r, extra in zip(row.retrains, attacks)
    )
    retrains[1].metrics["adv/eps_2x_accuracy"] = 0.99  # rises with epsilon
    c = dataclasses.replace(c, rows=(c.rows[0], dataclasses.replace(row, retrains=retrains)))
    text = render_markdown(c, [])
    section = text.split("## Sanity checks against gradient masking")[1].split("\n## ")[0]
    assert "| optuna | monotone in epsilon | 1/2 | seed 1: " in section
    assert "| optuna | PGD-100 <= PGD-20 | 1/2 | seed 1: 0.600 vs 0.500 |" in section
    assert "| optuna | apgd <= PGD-20 | 2/2 |  |" in section
    assert "baseline" not in section  # measured under no attack
    assert "1000 attacked test images" in section
