"""Equal compute for every strategy: a search spends a budget of trial-epochs, all of it.

One trial training one epoch is one trial-epoch. A strategy whose scheduler stops trials early
(ASHA) frees the epochs those trials would have trained; :class:`BudgetedSearcher` keeps asking
its inner searcher for new trials until the budget is spent, so every strategy trains the same
number of epochs whatever its scheduler. Grids and populations (PBT) never stop a trial early:
they get ``budget // epochs`` trials (:func:`trial_count`).

A new trial starts only while epochs are left after counting every running trial as if it trains
to its end: spend can exceed the budget by less than one trial's epochs, and only when an early
stop comes after the last trial was started.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from typing import Any

from ray.tune.search import Searcher

from auxtune.config import ConfigError


def trial_count(budget: int, epochs: int) -> int:
    """Trials of ``epochs`` epochs that fit ``budget`` trial-epochs (at least one, or an error).

    >>> trial_count(12, 3)
    4
    """
    if budget < epochs:
        raise ConfigError(
            f"a budget of {budget} trial-epochs is less than one trial of optim.epochs={epochs}; "
            f"give at least {epochs}"
        )
    return budget // epochs


class BudgetedSearcher(Searcher):
    """Suggests trials from ``searcher`` until ``budget`` trial-epochs are spent or committed.

    ``epochs``: the epochs one trial trains unless stopped early. Spent epochs are counted from
    the results the trials report (``training_iteration``), so a trial stopped after its first
    rung gives the rest of its epochs back to the budget.
    """

    def __init__(self, searcher: Searcher, budget: int, epochs: int) -> None:
        self.searcher, self.budget, self.epochs = searcher, int(budget), int(epochs)
        self.done: dict[str, int] = {}  # trial id -> epochs it trained (finished trials)
        self.live: dict[str, int] = {}  # trial id -> epochs it trained so far (running trials)
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    # -- accounting -------------------------------------------------------------------------
    @property
    def spent(self) -> int:
        """Trial-epochs trained so far by finished and running trials."""
        return sum(self.done.values()) + sum(self.live.values())

    @property
    def committed(self) -> int:
        """Trial-epochs spent, plus what running trials train if none is stopped early."""
        return sum(self.done.values()) + self.epochs * len(self.live)

    # -- the Searcher interface -------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.committed >= self.budget:
            # Searcher.FINISHED (a string) ends the search; Ray types suggest() without it
            return Searcher.FINISHED if not self.live else None  # type: ignore[return-value]
        suggestion = self.searcher.suggest(trial_id)
        if isinstance(suggestion, dict):
            self.live[trial_id] = 0
        return suggestion

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        if trial_id in self.live:
            self.live[trial_id] = int(result.get("training_iteration", self.live[trial_id]))
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id in self.live:
            trained = self.live.pop(trial_id)
            if result:
                trained = int(result.get("training_iteration", trained))
            self.done[trial_id] = trained
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    # -- resume --------------------------------------------------------------------------------
    # Tune saves a wrapper (anything with a ``searcher`` attribute) through get_state/set_state
    # and the innermost searcher through its own save_to_dir; save/restore do both in one file.
    def get_state(self) -> dict[str, Any]:
        return {"done": dict(self.done), "live": dict(self.live), "budget": self.budget}

    def set_state(self, state: dict[str, Any]) -> None:
        self.done, self.live = dict(state["done"]), dict(state["live"])
        self.budget = int(state["budget"])

    def save(self, checkpoint_path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            inner = os.path.join(tmp, "inner.pkl")
            self.searcher.save(inner)
            with open(inner, "rb") as f:
                blob = f.read()
        with open(checkpoint_path, "wb") as f:
            pickle.dump({"inner": blob, **self.get_state()}, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)  # Tune's own experiment state: trusted like tuner.pkl
        self.set_state(state)
        with tempfile.TemporaryDirectory() as tmp:
            inner = os.path.join(tmp, "inner.pkl")
            with open(inner, "wb") as f:
                f.write(state["inner"])
            self.searcher.restore(inner)
