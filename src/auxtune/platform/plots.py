"""The comparison's figures, drawn on matplotlib's Agg canvas (no pyplot state, no display).

Each function takes the finished :class:`~auxtune.platform.compare.Comparison`, writes one PNG and
returns its path, or ``None`` when the comparison holds nothing to draw (e.g. no strategy whose
lambdas move, for the trajectory plot).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from auxtune.platform.compare import Comparison
    from auxtune.platform.search import SearchResult

SEARCH_METRIC = "val_corrupt_accuracy"
DYNAMIC = ("meta", "pbt", "pb2")  # strategies whose lambdas change during training
DPI = 100


def integer_ticks(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def colors(strategies: Sequence[str]) -> dict[str, Any]:
    """One fixed colour per strategy, the same in every figure."""
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {name: palette(i % 10) for i, name in enumerate(strategies)}


# ----------------------------------------------------------------------- accuracy vs compute
def search_curve(search: SearchResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cumulative trial-epochs, metric of that trial-epoch, best so far) in reporting order.

    Concurrent trials' epochs are put in the order they were reported (``timestamp`` when every
    row has one), else trial by trial: the x axis counts trial-epochs, the compute spent.
    """
    rows: list[tuple[float, int, int, float]] = []
    timed = all("timestamp" in row for trial in search.trials for row in trial.history)
    for t, trial in enumerate(search.trials):
        for e, row in enumerate(trial.history):
            if SEARCH_METRIC in row and np.isfinite(row[SEARCH_METRIC]):
                when = float(row["timestamp"]) if timed else 0.0
                rows.append((when, t, e, float(row[SEARCH_METRIC])))
    rows.sort()
    values = np.array([r[3] for r in rows])
    spent = np.arange(1, len(values) + 1)
    return spent, values, np.maximum.accumulate(values) if len(values) else values


def plot_compute(comparison: Comparison, path: Path) -> Path:
    """Corruption accuracy against compute: the search's best so far, then the retrains' c15."""
    figure = new_figure(8.5, 4.2)
    axes = figure.add_subplot()
    palette = colors([s.strategy for s in comparison.strategies])
    for outcome in comparison.strategies:
        color = palette[outcome.strategy]
        spent, values, best = search_curve(outcome.search)
        if len(values):
            axes.scatter(spent, values, s=10, alpha=0.3, color=color)
            axes.step(spent, best, where="post", color=color, label=f"{outcome.strategy} search")
        mean, std = outcome.stat("c15")
        if mean is not None:
            axes.errorbar(
                [outcome.search.trial_epochs], [mean], yerr=[std or 0.0], fmt="*", ms=12,
                color=color, capsize=4, label=f"{outcome.strategy} retrain c15",
            )  # fmt: skip
    axes.set_xlabel("compute spent (trial-epochs)")
    axes.set_ylabel("accuracy")
    integer_ticks(axes)
    axes.set_title(
        f"lines: best {SEARCH_METRIC} so far during each search (dots: every trial-epoch)\n"
        f"stars: retrained best configuration, 15-corruption test accuracy, mean +- std over "
        f"{len(comparison.seeds)} seeds",
        fontsize=8,
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # never over the data
    return save(figure, path)


# ------------------------------------------------------------------------ per corruption
def plot_per_corruption(comparison: Comparison, path: Path) -> Path | None:
    """Grouped bars: each corruption's accuracy (mean over seeds) for every strategy."""
    from auxtune.data.corruptions import CORRUPTIONS, STANDARD_CORRUPTIONS

    tables = {o.strategy: o.per_corruption() for o in comparison.strategies}
    present = {c for table in tables.values() for c in table}
    names = [c for c in CORRUPTIONS if c in present] + sorted(present - set(CORRUPTIONS))
    if not names:
        return None
    figure = new_figure(max(8.0, 0.45 * len(names) + 2), 4.5)
    axes = figure.add_subplot()
    palette = colors(list(tables))
    width = 0.8 / len(tables)
    x = np.arange(len(names))
    for i, (strategy, table) in enumerate(tables.items()):
        means = [table.get(c, (np.nan, 0.0))[0] for c in names]
        stds = [table.get(c, (np.nan, 0.0))[1] for c in names]
        offset = (i - (len(tables) - 1) / 2) * width
        axes.bar(
            x + offset, means, width, yerr=stds, capsize=2, color=palette[strategy],
            label=strategy, error_kw={"elinewidth": 0.6},
        )  # fmt: skip
    standard = sum(c in STANDARD_CORRUPTIONS for c in names)
    if 0 < standard < len(names):  # the 4 extra corruptions are not in the headline mean
        axes.axvline(standard - 0.5, color="gray", lw=0.8, ls=":")
    axes.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("test accuracy (mean over severities 1-5)")
    axes.set_title(
        f"per-corruption test accuracy of the retrains, mean +- std over {len(comparison.seeds)} "
        "seeds (right of the dotted line: the 4 extra corruptions)",
        fontsize=9,
    )
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=7, loc="upper right")
    return save(figure, path)


# --------------------------------------------------------------------- lambda trajectories
def lambda_series(
    history: Sequence[Mapping[str, float]],
) -> dict[str, tuple[list[float], list[float]]]:
    """``{task: (epochs, lambdas)}`` from per-epoch rows holding ``lambda/<task>``."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for i, row in enumerate(history):
        epoch = float(row.get("epoch", row.get("step", i + 1)))
        for key, value in row.items():
            if key.startswith("lambda/"):
                epochs, values = series.setdefault(key.removeprefix("lambda/"), ([], []))
                epochs.append(epoch)
                values.append(float(value))
    return series


def plot_lambdas(comparison: Comparison, path: Path) -> Path | None:
    """Lambda of each task against epoch for the strategies that move them (meta, PBT, PB2).

    Solid: the best search trial. Meta learns again in every retrain: thin dashed lines, one per
    seed. PBT/PB2 retrains keep the best trial's final lambdas (see the report).
    """
    dynamic = [o for o in comparison.strategies if o.strategy in DYNAMIC]
    if not dynamic:
        return None
    figure = new_figure(4.2 * len(dynamic), 3.6)
    tasks = sorted({t for o in dynamic for t in lambda_series(o.search.best.history)})
    palette = colors(tasks)
    for i, outcome in enumerate(dynamic):
        axes = figure.add_subplot(1, len(dynamic), i + 1)
        for task, (epochs, values) in lambda_series(outcome.search.best.history).items():
            axes.plot(epochs, values, marker="o", ms=3, color=palette[task], label=task)
        if outcome.strategy == "meta":
            for retrain in outcome.retrains:
                for task, (epochs, values) in lambda_series(retrain.history).items():
                    axes.plot(epochs, values, ls="--", lw=0.8, color=palette.get(task, "gray"))
        axes.set_title(f"{outcome.strategy}: best trial {outcome.search.best.trial_id}", fontsize=9)
        axes.set_xlabel("epoch")
        axes.set_ylabel("lambda")
        integer_ticks(axes)
        axes.grid(alpha=0.3)
        if tasks:
            axes.legend(fontsize=7, loc="upper left")
    return save(figure, path)


PLOTS = {
    "corruption_vs_compute.png": plot_compute,
    "per_corruption.png": plot_per_corruption,
    "lambda_trajectories.png": plot_lambdas,
}


def draw_all(comparison: Comparison, directory: Path) -> list[str]:
    """Write every figure that has something to show into ``directory``; their file names."""
    written = []
    for name, draw in PLOTS.items():
        if draw(comparison, directory / name) is not None:
            written.append(name)
    return written
