"""Search strategies: the searches over the lambdas, one module each, and every weighting.

A lambda search module exposes ``plan(exp, num_trials) -> SearchPlan``: the Tune param space, how
many samples, the search algorithm and the scheduler. Every registered weighting is a strategy too
(:mod:`auxtune.search_spaces.weighting`): its trials train with it, drawing the hyperparameters its
config section declares searchable. Budgets are trial counts; epochs are ``exp.optim.epochs`` per
trial; lambdas are dimensionless weights in [``search.lambda_low``, ``search.lambda_high``].

    >>> strategy_names()[:6]
    ('fixed', 'random', 'optuna', 'pbt', 'pb2', 'meta')
"""

from __future__ import annotations

import importlib
from typing import Any

from auxtune.config import ConfigError
from auxtune.search_spaces.base import SearchPlan

#: lambda search name -> module implementing it (``fixed`` is the grid of the fixed weighting)
SEARCH_MODULES: dict[str, str] = {
    "fixed": "auxtune.search_spaces.fixed",
    "random": "auxtune.search_spaces.random",
    "optuna": "auxtune.search_spaces.optuna",
    "pbt": "auxtune.search_spaces.pbt",
    "pb2": "auxtune.search_spaces.pb2",
}


def strategy_names() -> tuple[str, ...]:
    """Every strategy: the lambda searches, then each registered weighting (imports the plugins)."""
    from auxtune.robust.weighting.registry import weighting_names

    return (*SEARCH_MODULES, *(name for name in weighting_names() if name not in SEARCH_MODULES))


def check_strategy(name: str) -> str:
    valid = strategy_names()
    if name not in valid:
        raise ConfigError(f"unknown search strategy {name!r}; valid strategies: {', '.join(valid)}")
    return name


def build_plan(name: str, exp: Any, num_trials: int) -> SearchPlan:
    """Strategy ``name``'s plan for ``exp`` within ``num_trials`` trials."""
    if name in SEARCH_MODULES:
        return importlib.import_module(SEARCH_MODULES[name]).plan(exp, num_trials)  # type: ignore[no-any-return]
    from auxtune.search_spaces.weighting import plan

    return plan(exp, num_trials, check_strategy(name))


__all__ = ["SEARCH_MODULES", "SearchPlan", "build_plan", "check_strategy", "strategy_names"]
