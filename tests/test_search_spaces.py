"""Strategy plans and trial configs (no Ray cluster: only the plain Tune objects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxtune.config import ConfigError
from auxtune.platform.config import load_experiment
from auxtune.robust.config import TasksConfig, TrainConfig
from auxtune.robust.weighting import WEIGHTINGS
from auxtune.search_spaces import SEARCH_MODULES, build_plan, check_strategy, strategy_names
from auxtune.search_spaces.fixed import grid_points
from auxtune.trainables.config import chosen_params, lambdas_key, trial_train_config

TWO_TASKS = ["tasks.names=[rotation,jigsaw]", "optim.epochs=3"]


def test_strategies_are_the_lambda_searches_and_every_weighting() -> None:
    from auxtune.platform.config import strategy_names as config_strategies
    from auxtune.robust.weighting import WEIGHTINGS

    names = strategy_names()
    assert config_strategies() == names
    assert set(names) == set(SEARCH_MODULES) | set(WEIGHTINGS)
    # a weighting named like a lambda search would be shadowed by it: only the grid shares its name
    assert set(SEARCH_MODULES) & set(WEIGHTINGS) == {"fixed"}
    with pytest.raises(
        ConfigError, match="unknown search strategy 'bayes'; valid strategies: fixed"
    ):
        check_strategy("bayes")


def test_fixed_grid_is_every_combination_or_a_budgeted_subset() -> None:
    points = grid_points((0.0, 0.5, 1.0), ("rotation", "jigsaw"), limit=100)
    assert len(points) == 9 and {"rotation": 0.5, "jigsaw": 1.0} in points
    few = grid_points((0.0, 0.5, 1.0), ("rotation", "jigsaw"), limit=4)
    assert len(few) == 4 and few[:3] == [
        dict.fromkeys(("rotation", "jigsaw"), v) for v in (0, 0.5, 1)
    ]
    assert len({tuple(p.values()) for p in few}) == 4


def test_plans() -> None:
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.schedulers.pb2 import PB2

    exp = load_experiment(None, [*TWO_TASKS, "search.num_trials=5"])
    fixed = build_plan("fixed", exp, None)
    assert fixed.trials == 9 and fixed.num_samples == 1 and fixed.scheduler is None
    random = build_plan("random", exp, 5)
    assert random.num_samples == 5 and type(random.scheduler).__name__ == "AsyncHyperBandScheduler"
    assert set(random.param_space["lambda"]) == {"rotation", "jigsaw"}
    pbt = build_plan("pbt", exp, 5)
    assert isinstance(pbt.scheduler, PopulationBasedTraining) and pbt.checkpoints_to_keep
    assert pbt.scheduler._synch is True  # the default: budgets stay exact
    asynch = load_experiment(None, [*TWO_TASKS, "search.pbt_synch=false"])
    assert build_plan("pbt", asynch, 5).scheduler._synch is False
    pb2 = build_plan("pb2", exp, 5)
    assert isinstance(pb2.scheduler, PB2)
    meta = build_plan("meta", exp, 5)
    assert meta.weighting == "meta" and set(meta.param_space["lambda"]) == {"rotation", "jigsaw"}
    assert meta.param_space["weighting.meta.meta_lr"].lower == 1e-3  # the plugin's default range


def test_optuna_study_names_are_unique_and_storage_is_kept(tmp_path: Path) -> None:
    exp = load_experiment(None, [*TWO_TASKS, f"search.optuna_storage=sqlite:///{tmp_path}/s.db"])
    a, b = build_plan("optuna", exp, 2), build_plan("optuna", exp, 2)
    assert a.search_alg._study_name != b.search_alg._study_name
    assert type(a.search_alg._storage).__name__ == "RDBStorage"


def test_bad_optuna_storage() -> None:
    with pytest.raises(ConfigError, match="must be a database URL"):
        load_experiment(None, ["search.optuna_storage=study.db"])


def test_trial_config_sets_lambdas_a_weighting_and_overrides() -> None:
    base = TrainConfig(tasks=TasksConfig(names=("rotation", "jigsaw")))
    config = {
        "lambda": {"rotation": 0.25},
        "weighting.name": "meta",
        "weighting.meta.meta_lr": 0.03,
        "optim.lr": 0.05,
    }
    cfg = trial_train_config(base, config, threads=2)
    assert cfg.weighting.lambdas == {"rotation": 0.25} and cfg.weighting.options.meta_lr == 0.03
    assert cfg.optim.lr == 0.05 and cfg.runtime.threads == 2
    assert cfg.weighting.initial_lambdas(cfg.tasks.names) == {"rotation": 0.25, "jigsaw": 0.5}
    assert chosen_params(config) == {
        "lambda/rotation": 0.25,
        "weighting.name": "meta",
        "weighting.meta.meta_lr": 0.03,
        "optim.lr": 0.05,
    }
    key = lambdas_key(cfg)
    assert key["lambdas"] == {"rotation": 0.25, "jigsaw": 0.5} and key["weighting"] == "meta"
    assert key["options"]["meta_lr"] == 0.03
    schedule = [{"rotation": 0.1}, {"rotation": 0.2, "jigsaw": 0.3}]  # values keep their types
    cfg = trial_train_config(
        base, {"weighting.name": "schedule", "weighting.schedule.per_epoch": schedule}
    )
    assert cfg.weighting.options.per_epoch == tuple(schedule)
    unset = trial_train_config(base, {"weighting.gradnorm.alpha": None, "optim.lr": None})
    assert unset == base  # None: another strategy's key in a shared grid


@pytest.mark.parametrize("name", [n for n in WEIGHTINGS if n not in SEARCH_MODULES])
def test_every_weighting_is_a_strategy_searching_its_own_hyperparameters(name: str) -> None:
    """The plan trains with the weighting and draws the ranges its section declares; a draw is a
    valid trial config. A weighting with nothing to search runs its trials as seeds. (``fixed``
    is the lambda grid, tested above.)"""
    exp = load_experiment(None, [*TWO_TASKS, "seed=7"])
    plan = build_plan(name, exp, 3)
    cls = WEIGHTINGS[name]
    ranges = exp.weighting.section(name).search_ranges() if cls.config_class else {}
    drawn = {k: v for k, v in plan.param_space.items() if k.startswith("weighting.")}
    assert plan.weighting == name and set(drawn) == {f"weighting.{name}.{k}" for k in ranges}
    assert ("lambda" in plan.param_space) == cls.search_lambdas
    if not drawn and not cls.search_lambdas:
        assert plan.param_space == {"seed": {"grid_search": [7, 8, 9]}} and plan.trials == 3
        assert plan.scheduler is None
        return
    for key, domain in drawn.items():
        low, high = ranges[key.rsplit(".", 1)[1]]
        assert (domain.lower, domain.upper) == (low, high)
        sample = {key: domain.sample(), "weighting.name": name}
        cfg = trial_train_config(exp.train_config(), sample)
        assert low <= getattr(cfg.weighting.options, key.rsplit(".", 1)[1]) <= high


def test_a_yaml_range_replaces_the_plugins_default() -> None:
    exp = load_experiment(None, [*TWO_TASKS, "weighting.gradnorm.search={lr: [0.01, 0.1]}"])
    space = build_plan("gradnorm", exp, 2).param_space
    assert set(space) == {"weighting.gradnorm.lr"}  # alpha no longer searched
    assert type(space["weighting.gradnorm.lr"]).__name__ == "Float"
    assert "LogUniform" in type(space["weighting.gradnorm.lr"].sampler).__name__


def test_trial_config_rejects_a_task_that_is_not_trained() -> None:
    base = TrainConfig(tasks=TasksConfig(names=("rotation",)))
    with pytest.raises(ConfigError, match=r"lambda/jigsaw but .jigsaw. is not in tasks\.names"):
        trial_train_config(base, {"lambda": {"jigsaw": 0.5}})


def test_best_prefers_trials_that_trained_every_epoch() -> None:
    from auxtune.platform.search import TrialSummary, pick_best

    def trial(trial_id: str, acc: float, epochs: int, status: str = "TERMINATED") -> TrialSummary:
        return TrialSummary(
            trial_id,
            {},
            {"val_corrupt_accuracy": acc},
            [{}] * epochs,
            epochs,
            1.0,
            status,
            None,
            None,
            None,
        )

    early = trial("early", 0.9, 1)  # stopped by ASHA after one epoch
    full = trial("full", 0.6, 3)
    failed = trial("failed", 0.99, 3, "ERROR")
    assert pick_best([early, full, failed], "val_corrupt_accuracy") is full
    assert pick_best([failed], "val_corrupt_accuracy") is None
