"""Equal budgets: the budgeted searcher feeds new trials while an early-stopping scheduler frees
epochs, and stops once the budget is spent (no Ray cluster: the searcher is driven by hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

from auxtune.config import ConfigError
from auxtune.platform.budget import BudgetedSearcher, trial_count


class Counting(Searcher):
    """Suggests ``{"x": n}`` for the n-th trial; records what it was told."""

    def __init__(self) -> None:
        super().__init__(metric="acc", mode="max")
        self.suggested = 0
        self.completed: list[str] = []

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self.suggested += 1
        return {"x": self.suggested}

    def on_trial_complete(self, trial_id: str, result: Any = None, error: bool = False) -> None:
        self.completed.append(trial_id)

    def save(self, checkpoint_path: str) -> None:
        Path(checkpoint_path).write_text(json.dumps([self.suggested, self.completed]))

    def restore(self, checkpoint_path: str) -> None:
        self.suggested, self.completed = json.loads(Path(checkpoint_path).read_text())


def run(budget: int, epochs: int, concurrent: int, stop_after: dict[int, int]) -> BudgetedSearcher:
    """Drive the searcher as Tune would: ``concurrent`` slots, trial n stopped after
    ``stop_after.get(n, epochs)`` epochs (an ASHA rung)."""
    searcher = BudgetedSearcher(Counting(), budget, epochs)
    running: dict[str, int] = {}  # trial id -> epochs it will train
    started = 0
    while True:
        while len(running) < concurrent:
            suggestion = searcher.suggest(f"t{started}")
            if suggestion == Searcher.FINISHED or suggestion is None:
                break
            running[f"t{started}"] = stop_after.get(started, epochs)
            started += 1
        if not running:
            assert searcher.suggest("late") == Searcher.FINISHED
            return searcher
        trial_id = next(iter(running))  # the oldest running trial trains to its end
        for epoch in range(1, running[trial_id] + 1):
            searcher.on_trial_result(trial_id, {"training_iteration": epoch})
        searcher.on_trial_complete(trial_id, {"training_iteration": running.pop(trial_id)})


@pytest.mark.parametrize("concurrent", [1, 2, 4])
def test_budget_spent_whatever_the_early_stops(concurrent: int) -> None:
    epochs, budget = 4, 16
    # no early stop: exactly budget // epochs trials
    plain = run(budget, epochs, concurrent, {})
    assert plain.spent == budget and len(plain.done) == 4
    # trials 0-3 stopped after one epoch: their 12 freed epochs go to new trials
    stopped = run(budget, epochs, concurrent, {0: 1, 1: 1, 2: 1, 3: 1})
    assert budget <= stopped.spent <= budget + (epochs - 1) * concurrent
    assert len(stopped.done) > 4
    assert stopped.searcher.completed == list(stopped.done)  # the inner searcher heard of each


def test_an_early_stop_after_the_last_start_leaves_the_overshoot_bounded() -> None:
    searcher = run(10, 4, 1, {1: 2})  # 4 + 2 + 4 = 10
    assert searcher.spent == 10
    assert run(9, 4, 1, {}).spent == 12  # a trial started with 1 epoch left trains all 4


def test_trial_count() -> None:
    assert trial_count(12, 3) == 4 and trial_count(13, 3) == 4
    with pytest.raises(ConfigError, match=r"less than one trial of optim.epochs=3"):
        trial_count(2, 3)


def test_state_survives_save_and_restore(tmp_path: Any) -> None:
    searcher = BudgetedSearcher(Counting(), 8, 4)
    searcher.suggest("a")
    searcher.on_trial_result("a", {"training_iteration": 2})
    path = str(tmp_path / "state.pkl")
    searcher.save(path)
    restored = BudgetedSearcher(Counting(), 8, 4)
    restored.restore(path)
    assert restored.live == {"a": 2} and restored.committed == 4
    assert restored.searcher.suggested == 1  # the inner searcher's state came back too
    # what Tune itself does for a wrapper: get_state / set_state (the inner one saves itself)
    again = BudgetedSearcher(Counting(), 1, 4)
    again.set_state(searcher.get_state())
    assert (again.live, again.budget, again.committed) == ({"a": 2}, 8, 4)
