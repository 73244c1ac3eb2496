"""Synchronous PBT and PB2 whose population still meets after ``Tuner.restore`` (``--resume``).

Ray Tune (2.60) saves no scheduler state: a resumed search gets back the scheduler pickled when
the search started, whose next meeting point (``_next_perturbation_sync``) is still the first
interval, while the restored trials continue from their checkpoints' iterations. When the
population meets, Tune sets the next meeting to ``max(meeting + interval, furthest trial)``; with
every trial at the furthest iteration, no trial is behind the meeting point, so
``choose_trial_to_run`` picks none and every trial stays PAUSED while Tune's loop spins (measured:
10 minutes at 100 % CPU; ray-project/ray#48616 proposes the same fix, not merged in 2.60).

The fix: whenever no live trial is behind the next meeting point, move it one interval past the
furthest trial. In a search that is never restored it never triggers (the population's meeting
point is always ahead of it after a meeting).
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2


class MeetsAgainAfterRestore(PopulationBasedTraining):
    """Synchronous PBT whose next meeting point is always ahead of some live trial."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if self._synch:
            reached = [
                self._trial_state[t].last_train_time
                for t in tune_controller.get_live_trials()
                if t in self._trial_state
            ]
            if reached and min(reached) >= self._next_perturbation_sync:
                self._next_perturbation_sync = max(reached) + self._perturbation_interval
        return str(decision)


class ResumablePBT(MeetsAgainAfterRestore):
    """:class:`~ray.tune.schedulers.PopulationBasedTraining` that survives ``--resume``."""


class ResumablePB2(MeetsAgainAfterRestore, PB2):
    """:class:`~ray.tune.schedulers.pb2.PB2` that survives ``--resume``."""


__all__ = ["MeetsAgainAfterRestore", "ResumablePB2", "ResumablePBT"]
