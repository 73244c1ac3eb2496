"""``fixed``: a grid over ``search.grid`` lambda values per task (every combination), FIFO.

The grid has len(grid) ** len(tasks) points; when ``num_trials`` (the budget) allows fewer, an
evenly spaced deterministic subset of the combinations is run, always including the diagonal
(every task at the same value).
"""

from __future__ import annotations

import itertools
from typing import Any

from ray import tune

from auxtune.search_spaces.base import SearchPlan


def grid_points(
    grid: tuple[float, ...], tasks: tuple[str, ...], limit: int
) -> list[dict[str, float]]:
    """At most ``limit`` lambda assignments from the grid (diagonal first, then evenly spaced)."""
    combos = [dict(zip(tasks, values)) for values in itertools.product(grid, repeat=len(tasks))]
    if len(combos) <= limit:
        return combos
    diagonal = [dict.fromkeys(tasks, v) for v in grid][:limit]
    rest = [c for c in combos if c not in diagonal]
    need = limit - len(diagonal)
    step = len(rest) / need if need else 0
    return diagonal + [rest[int(i * step)] for i in range(need)]


def plan(exp: Any, num_trials: int | None) -> SearchPlan:
    tasks = exp.tasks.names
    full = len(exp.search.grid) ** len(tasks)
    points = grid_points(exp.search.grid, tasks, full if num_trials is None else num_trials)
    notes = []
    if len(points) < full:
        notes.append(f"fixed: running {len(points)} of the {full} grid points (budget)")
    return SearchPlan(
        param_space={"lambda": tune.grid_search(points)},
        num_samples=1,
        trials=len(points),
        notes=notes,
    )
