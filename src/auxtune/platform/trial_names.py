"""Readable names for a search's trials, which their MLflow runs take too."""

from __future__ import annotations

from typing import Any


class TrialNamer:
    """Readable trial (and MLflow run) names: ``optuna-003 rot=0.31 blur=0.8``."""

    def __init__(self, strategy: str, tasks: tuple[str, ...]) -> None:
        self.strategy, self.tasks = strategy, tasks
        self.count = 0  # trials named so far (pickled with the Tuner: a resume continues it)

    def __deepcopy__(self, memo: dict[int, Any]) -> TrialNamer:
        # Tune deep-copies the experiment spec, namer included, for every trial it creates: a
        # copy would count from 0 again and name every trial `<strategy>-001`
        return self

    def __call__(self, trial: Any) -> str:
        from auxtune.trainables.config import trial_lambdas

        self.count += 1
        lambdas = trial_lambdas(trial.config)
        shown = " ".join(f"{short_name(t)}={lambdas[t]:.2g}" for t in self.tasks if t in lambdas)
        extra = " ".join(
            f"{key}={value:.2g}"
            for key, value in trial.config.items()
            if isinstance(value, float) and not key.startswith("lambda")
        )
        return " ".join(
            part for part in (f"{self.strategy}-{self.count:03d}", shown, extra) if part
        )


def short_name(task: str) -> str:
    """A task's short label, declared by the task class, else its first word or its first three
    letters (``blur_reconstruction`` -> ``blur``, ``rotation`` -> ``rot``)."""
    from auxtune.robust.tasks import TASKS

    word = task.split("_")[0]
    return str(getattr(TASKS.get(task), "short_name", word if len(word) <= 4 else word[:3]))
