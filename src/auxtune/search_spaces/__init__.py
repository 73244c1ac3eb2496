"""Search strategies over the auxiliary-task lambdas, one module per strategy.

Each module exposes ``plan(exp, num_trials) -> SearchPlan``: the Tune param space, how many
samples, the search algorithm and the scheduler. Budgets are trial counts; epochs are
``exp.optim.epochs`` per trial; lambdas are dimensionless weights in
[``search.lambda_low``, ``search.lambda_high``].

    >>> sorted(STRATEGY_MODULES)
    ['fixed', 'meta', 'optuna', 'pb2', 'pbt', 'random']
"""

from __future__ import annotations

import importlib
from typing import Any

from auxtune.config import ConfigError
from auxtune.search_spaces.base import SearchPlan

#: strategy name -> module implementing it
STRATEGY_MODULES: dict[str, str] = {
    "fixed": "auxtune.search_spaces.fixed",
    "random": "auxtune.search_spaces.random",
    "optuna": "auxtune.search_spaces.optuna",
    "pbt": "auxtune.search_spaces.pbt",
    "pb2": "auxtune.search_spaces.pb2",
    "meta": "auxtune.search_spaces.meta",
}


def check_strategy(name: str) -> str:
    if name not in STRATEGY_MODULES:
        raise ConfigError(
            f"unknown search strategy {name!r}; valid strategies: {', '.join(STRATEGY_MODULES)}"
        )
    return name


def strategy_module(name: str) -> Any:
    """The module of strategy ``name``; an unknown name is a ConfigError listing the valid ones."""
    return importlib.import_module(STRATEGY_MODULES[check_strategy(name)])


def build_plan(name: str, exp: Any, num_trials: int) -> SearchPlan:
    return strategy_module(name).plan(exp, num_trials)


__all__ = ["STRATEGY_MODULES", "SearchPlan", "build_plan", "check_strategy", "strategy_module"]
