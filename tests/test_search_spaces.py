"""Strategy plans and trial configs (no Ray cluster: only the plain Tune objects)."""

from __future__ import annotations

from pathlib import Path

import pytest

from auxtune.config import ConfigError
from auxtune.platform.config import load_experiment
from auxtune.robust.config import TasksConfig, TrainConfig
from auxtune.search_spaces import STRATEGY_MODULES, build_plan, check_strategy
from auxtune.search_spaces.fixed import grid_points
from auxtune.trainables.config import chosen_params, lambdas_key, trial_train_config

TWO_TASKS = ["tasks.names=[rotation,jigsaw]", "optim.epochs=3"]


def test_registry_matches_the_config_strategies() -> None:
    from auxtune.platform.config import STRATEGIES

    assert tuple(STRATEGY_MODULES) == STRATEGIES
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
    exp = load_experiment(None, [*TWO_TASKS, "search.num_trials=5"])
    fixed = build_plan("fixed", exp, None)
    assert fixed.trials == 9 and fixed.num_samples == 1 and fixed.scheduler is None
    random = build_plan("random", exp, 5)
    assert random.num_samples == 5 and type(random.scheduler).__name__ == "AsyncHyperBandScheduler"
    assert set(random.param_space["lambda"]) == {"rotation", "jigsaw"}
    pbt = build_plan("pbt", exp, 5)
    assert type(pbt.scheduler).__name__ == "PopulationBasedTraining" and pbt.checkpoints_to_keep
    assert pbt.scheduler._synch is True  # the default: budgets stay exact
    asynch = load_experiment(None, [*TWO_TASKS, "search.pbt_synch=false"])
    assert build_plan("pbt", asynch, 5).scheduler._synch is False
    pb2 = build_plan("pb2", exp, 5)
    assert type(pb2.scheduler).__name__ == "PB2"
    meta = build_plan("meta", exp, 5)
    assert meta.weighting == "meta" and "meta_lr" in meta.param_space
    assert meta.param_space["meta_lr"].lower == exp.search.meta_lr_low


def test_optuna_study_names_are_unique_and_storage_is_kept(tmp_path: Path) -> None:
    exp = load_experiment(None, [*TWO_TASKS, f"search.optuna_storage=sqlite:///{tmp_path}/s.db"])
    a, b = build_plan("optuna", exp, 2), build_plan("optuna", exp, 2)
    assert a.search_alg._study_name != b.search_alg._study_name
    assert type(a.search_alg._storage).__name__ == "RDBStorage"


def test_bad_optuna_storage() -> None:
    with pytest.raises(ConfigError, match="must be a database URL"):
        load_experiment(None, ["search.optuna_storage=study.db"])


def test_trial_config_sets_lambdas_meta_lr_and_overrides() -> None:
    base = TrainConfig(tasks=TasksConfig(names=("rotation", "jigsaw")))
    config = {"lambda": {"rotation": 0.25}, "meta_lr": 0.03, "optim.lr": 0.05}
    cfg = trial_train_config(base, config, threads=2)
    assert cfg.weighting.lambdas == {"rotation": 0.25} and cfg.weighting.meta_lr == 0.03
    assert cfg.optim.lr == 0.05 and cfg.runtime.threads == 2
    assert cfg.weighting.initial_lambdas(cfg.tasks.names) == {"rotation": 0.25, "jigsaw": 0.5}
    assert chosen_params(config) == {"lambda/rotation": 0.25, "meta_lr": 0.03, "optim.lr": 0.05}
    assert lambdas_key(cfg)["lambdas"] == {"rotation": 0.25, "jigsaw": 0.5}


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
