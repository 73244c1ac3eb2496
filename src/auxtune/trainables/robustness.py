"""What label noise and OOD detection add to a run: GLC's first stage and the OOD metrics.

Shared by the trials (:mod:`auxtune.trainables.function`) and ``auxtune train``, so both report
the same names (listed in :mod:`auxtune.trainables.metrics`).

**How a GLC trial spends its budget.** One trial runs both stages: stage 1 (``optim.epochs``
epochs on the untrusted images) runs before the trial's first report, then every reported epoch
is a stage-2 epoch. A search or comparison counts trial-epochs by reports, so a GLC trial costs
about twice the compute of its count (stage 1 trains on the untrusted images only, a little less);
``glc/stage1_s``, reported with the first epoch, and ``time/trial_s`` say how much. A resumed or
exploited trial takes C_hat from its checkpoint and never runs stage 1 again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from auxtune.data.experiment import ExperimentData, check_prepared_for
from auxtune.robust.config import TrainConfig
from auxtune.robust.trainer import MetaBatchSource, Trainer
from auxtune.trainables.metrics import OOD_MEASURES


def gold_stage_one(
    cfg: TrainConfig,
    experiment: ExperimentData | None,
    meta_source: MetaBatchSource | None = None,
    *,
    resuming: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[torch.Tensor | None, dict[str, float]]:
    """GLC's C_hat and its metrics (``glc/stage1_s``, ``glc/matrix_error``: mean |C_hat - C|);
    ``(None, {})`` unless ``label_noise.correction`` is ``glc`` and the run is not ``resuming``
    (its checkpoint holds C_hat). First checks that ``cfg`` is the setting ``experiment`` was
    prepared for."""
    if experiment is None:
        return None, {}
    check_prepared_for(experiment, cfg)
    if resuming or cfg.label_noise.correction != "glc" or experiment.label_noise is None:
        return None, {}
    from auxtune.robust.gold_loss import matrix_error
    from auxtune.robust.label_correction import estimate_corruption

    train = experiment.splits.train
    estimate = estimate_corruption(
        cfg,
        train.images,
        train.labels,
        experiment.label_noise.trusted,
        experiment.splits.num_classes,
        meta_source=meta_source,
        on_epoch=on_epoch,
    )
    error = matrix_error(estimate.matrix, torch.as_tensor(experiment.label_noise.matrix))
    return estimate.matrix, {"glc/stage1_s": estimate.seconds, "glc/matrix_error": error}


def ood_epoch_metrics(
    trainer: Trainer, cfg: TrainConfig, experiment: ExperimentData | None
) -> dict[str, float]:
    """``val_ood_auroc`` (headline detector) and ``val_ood_auroc/<detector>``: the val split
    against the ``ood.val_classes`` images; empty without them."""
    if experiment is None or experiment.ood_val is None:
        return {}
    results = _evaluate(trainer, experiment.splits.val.images, {"val": experiment.ood_val})["val"]
    metrics = {f"val_ood_auroc/{d}": m.auroc for d, m in results.items()}
    metrics["val_ood_auroc"] = metrics[f"val_ood_auroc/{cfg.ood.detector}"]
    return metrics


def ood_final_metrics(
    trainer: Trainer, cfg: TrainConfig, experiment: ExperimentData | None
) -> dict[str, float]:
    """``ood/<set>/<detector>/<measure>`` for the test split against each OOD set, and the
    headline detector's mean over the sets as ``ood_auroc``, ``ood_aupr``, ``ood_fpr95``."""
    if experiment is None or not experiment.ood_test:
        return {}
    results = _evaluate(trainer, experiment.splits.test.images, experiment.ood_test)
    metrics = {
        f"ood/{name}/{detector}/{measure}": value
        for name, by_detector in results.items()
        for detector, scores in by_detector.items()
        for measure, value in scores.as_dict().items()
    }
    for measure in OOD_MEASURES:
        values = [by[cfg.ood.detector].as_dict()[measure] for by in results.values()]
        metrics[f"ood_{measure}"] = float(np.mean(values))
    return metrics


def _evaluate(trainer: Trainer, inliers: np.ndarray, sets: dict[str, np.ndarray]) -> Any:
    from auxtune.robust.ood import evaluate_ood

    return evaluate_ood(
        trainer.model,
        inliers,
        sets,
        trainer.device,
        autocast=trainer.autocast,
        fmt=trainer.memory_format,
    )
