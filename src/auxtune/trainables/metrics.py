"""The metrics a trial reports: the one list that ``search.metric`` and ``auxtune compare`` read.

Every epoch a trial reports :data:`EPOCH_METRICS` (and each head's loss, each lambda, timings);
its last epoch adds :data:`FINAL_METRICS`, measured on the test split and the corrupted test set.
A feature that reports more (adversarial accuracy, OOD AUROC, ...) lists its names in
:func:`reported_metrics` under the condition that turns it on, so a misspelt ``search.metric`` fails
when the config is read, not after a trial's first epoch.

    >>> from auxtune.robust.config import TrainConfig, ood_detectors
    >>> "val_corrupt_accuracy" in reported_metrics(TrainConfig())
    True
    >>> from auxtune.robust.config import AdversarialConfig
    >>> reported_metrics(TrainConfig(adversarial=AdversarialConfig(train=True)))["val_adv_accuracy"]
    'epoch'
"""

from __future__ import annotations

from auxtune.robust.config import TrainConfig, ood_detectors

#: reported after every epoch, on the validation split: what a search may maximise
EPOCH_METRICS: tuple[str, ...] = (
    "val_accuracy",  # clean validation images
    "val_corrupt_accuracy",  # validation images under the 4 extra corruptions (leak-free)
)
#: reported once, after the last epoch: what a comparison reports and ranks by
FINAL_METRICS: tuple[str, ...] = (
    "clean_test_accuracy",  # the test split, uncorrupted
    "c15_accuracy",  # 15 standard corruptions x 5 severities (the headline)
    "c19_accuracy",  # all 19 corruptions (the seed paper's number)
    *(f"c15_s{severity}_accuracy" for severity in range(1, 6)),  # the 15 at one severity
)


#: what each OOD detector is scored by (:class:`auxtune.robust.ood.DetectionMetrics`)
OOD_MEASURES: tuple[str, ...] = ("auroc", "aupr", "fpr95")  # fpr95: lower is better
#: the measures where lower is better (a metric named ``..._<measure>`` or ``.../<measure>``)
LOWER_IS_BETTER: tuple[str, ...] = ("fpr95",)


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is the better one (all but FPR at 95 % TPR).

    >>> higher_is_better("ood_auroc"), higher_is_better("ood_fpr95")
    (True, False)
    >>> higher_is_better("ood/heldout/msp/fpr95")
    False
    """
    return not metric.endswith(tuple(f"{sep}{m}" for m in LOWER_IS_BETTER for sep in "_/"))


def reported_metrics(cfg: TrainConfig) -> dict[str, str]:
    """Every metric a trial of ``cfg`` reports, and when: ``"epoch"`` (every epoch) or ``"final"``."""
    return {
        **dict.fromkeys(EPOCH_METRICS, "epoch"),
        **dict.fromkeys(FINAL_METRICS, "final"),
        **adversarial_metrics(cfg),
        **dict.fromkeys(val_ood_metrics(cfg), "epoch"),
        **dict.fromkeys(final_ood_metrics(cfg), "final"),
    }


def adversarial_metrics(cfg: TrainConfig) -> dict[str, str]:
    """With ``adversarial.train`` or ``adversarial.evaluate``: ``val_adv_accuracy`` every epoch; at the end
    ``adv_<attack>_accuracy`` for each of ``adversarial.final_attacks`` (default
    ``adv_pgd20_accuracy``, ``adv_pgd100_accuracy``) and ``adv/eps_<m>x_accuracy`` for each
    multiple m of the training epsilon in ``adversarial.sweep``."""
    if not cfg.adversarial.enabled:
        return {}
    from auxtune.robust import adversarial_eval  # torch: only when the section is on

    epoch = adversarial_eval.epoch_metric_names(cfg.adversarial)
    final = adversarial_eval.final_metric_names(cfg.adversarial)
    return {**dict.fromkeys(epoch, "epoch"), **dict.fromkeys(final, "final")}


def val_ood_metrics(cfg: TrainConfig) -> tuple[str, ...]:
    """With ``ood.val_classes``: AUROC of the val split against those classes' val images, for
    the headline detector (``val_ood_auroc``) and each detector (``val_ood_auroc/<detector>``).

    >>> from auxtune.robust.config import OODConfig
    >>> val_ood_metrics(TrainConfig(ood=OODConfig(val_classes=(7,))))[:2]
    ('val_ood_auroc', 'val_ood_auroc/msp')
    """
    if not cfg.ood.val_classes:
        return ()
    detectors = ood_detectors(cfg.tasks.names)
    return ("val_ood_auroc", *(f"val_ood_auroc/{d}" for d in detectors))


def final_ood_metrics(cfg: TrainConfig) -> tuple[str, ...]:
    """With ``ood.sets``: ``ood_auroc``, ``ood_aupr``, ``ood_fpr95`` (the headline detector, mean
    over the sets), then ``ood/<set>/<detector>/<measure>`` for every set and detector."""
    if not cfg.ood.sets:
        return ()
    detectors = ood_detectors(cfg.tasks.names)
    return (
        *(f"ood_{m}" for m in OOD_MEASURES),
        *(f"ood/{s}/{d}/{m}" for s in cfg.ood.sets for d in detectors for m in OOD_MEASURES),
    )


def epoch_metrics(cfg: TrainConfig) -> tuple[str, ...]:
    """The metrics reported after every epoch (what schedulers such as ASHA and PBT compare)."""
    return tuple(m for m, when in reported_metrics(cfg).items() if when == "epoch")
