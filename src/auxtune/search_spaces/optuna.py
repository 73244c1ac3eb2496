"""``optuna``: TPE over the lambda vector (OptunaSearch), ASHA for early stopping.

Optuna's own pruners are disabled by OptunaSearch, hence ASHA. The study gets a unique name (the
default name would append to an existing study); ``storage`` may be an Optuna storage object
(e.g. ``optuna.storages.RDBStorage("sqlite:///study.db")``) to keep the study.

With ``search.objectives`` the study is multi-objective: TPE maximises every objective at once
(Ray's OptunaSearch takes lists of metrics and modes) and no trial is stopped early, since ASHA
ranks trials on one metric and would cut trials that are on the front for another.
"""

from __future__ import annotations

import uuid
from typing import Any

from auxtune.search_spaces.base import SearchPlan, asha, lambda_domains


def plan(
    exp: Any, num_trials: int, *, storage: Any = None, study_name: str | None = None
) -> SearchPlan:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    storage = storage if storage is not None else _storage(exp.search.optuna_storage)
    objectives = list(exp.search.objectives)
    search = OptunaSearch(
        metric=objectives or exp.search.metric,
        mode=["max"] * len(objectives) if objectives else "max",
        sampler=optuna.samplers.TPESampler(seed=exp.seed),
        study_name=study_name or f"{exp.name}-optuna-{uuid.uuid4().hex[:8]}",
        storage=storage,
    )
    return SearchPlan(
        param_space={"lambda": lambda_domains(exp)},
        num_samples=num_trials,
        trials=num_trials,
        search_alg=search,
        scheduler=None if objectives else asha(exp),
        notes=[_multi_objective_note(objectives)] if objectives else [],
    )


def _multi_objective_note(objectives: list[str]) -> str:
    return (
        f"optuna: multi-objective TPE maximising {', '.join(objectives)}; every trial trains all "
        "its epochs (no early stopping on one objective)"
    )


def _storage(url: str | None) -> Any:
    if not url:
        return None
    import optuna

    return optuna.storages.RDBStorage(url)
