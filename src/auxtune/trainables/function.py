"""The Ray Tune function trainable: one trial = one :class:`~auxtune.robust.trainer.Trainer` run.

Every epoch it reports each head's loss, every lambda, clean ``val_accuracy``, the leak-free
``val_corrupt_accuracy`` (val under the 4 extra corruptions), whatever the weighting reports and
the epoch time, together with a checkpoint (so PBT can exploit any trial and an interrupted search
resumes). The last epoch adds ``clean_test_accuracy`` and the corrupted-test accuracies:
``c15_accuracy`` (headline), ``c19_accuracy``, ``c15_s<k>_accuracy`` (severity k) and
``c/<corruption>``. With ``adversarial.train`` or ``evaluate``, every epoch adds ``val_adv_accuracy``
and the last one PGD-20, PGD-100 and the epsilon sweep on the test split; with ``ood`` configured,
the OOD detection metrics (``val_ood_auroc`` every epoch, ``ood_auroc`` ... at the end). With label
noise, ``val_accuracy`` is measured against the (noisy) val labels and ``clean_test_accuracy``
against the clean test labels; a GLC trial trains its first stage before its first report
(:mod:`auxtune.trainables.robustness`). :mod:`auxtune.trainables.metrics` lists them all.

A trial whose loss becomes NaN raises :class:`DivergenceError` and ends failed; retries
(``search.max_failures``, meant for lost nodes) fail at once instead of diverging again.

A checkpoint directory holds ``trainer.pt`` (:func:`auxtune.robust.checkpoint.save_checkpoint`)
and ``trial.json`` (which trial wrote it, with which lambdas). Restoring a checkpoint written with
other lambdas is a PBT exploit: model, optimizer and schedule come from the donor, the weighting
starts from this trial's (mutated) config.
"""

from __future__ import annotations

import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from ray import tune

from auxtune.config import from_dict
from auxtune.data.meta_validation import meta_validation_source
from auxtune.robust import adversarial_eval
from auxtune.robust.checkpoint import load_checkpoint, save_checkpoint
from auxtune.robust.config import TrainConfig
from auxtune.robust.device import usable_threads
from auxtune.robust.trainer import DivergenceError, Trainer
from auxtune.trainables.config import lambdas_key, trial_train_config
from auxtune.trainables.data import TrialData
from auxtune.trainables.robustness import gold_stage_one, ood_epoch_metrics, ood_final_metrics

CHECKPOINT_FILE = "trainer.pt"
TRIAL_FILE = "trial.json"


def auxtune_trial(config: dict[str, Any], *, setup: dict[str, Any], data: TrialData) -> None:
    """Train one trial. ``setup``: ``train`` (TrainConfig as plain data), ``threads`` and
    ``diverged_dir`` (where diverged trials leave a marker; None on remote storage)."""
    start = time.perf_counter()
    # object-store arrays are read-only; the trainer only ever reads (indexes) them
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
    threads = usable_threads(int(setup["threads"]))  # never more than this node's CPUs
    torch.set_num_threads(threads)
    base = from_dict(TrainConfig, setup["train"])
    cfg = trial_train_config(base, config, threads=threads)
    trial_id = tune.get_context().get_trial_id() or "local"
    marker = _divergence_marker(setup, trial_id)
    if marker is not None and marker.is_file():  # a retry (max_failures) or a resume
        raise DivergenceError(f"{marker.read_text().strip()} (diverged before: not retried)")
    splits, experiment = data.splits, data.experiment
    # the paper protocol's pool was read on the driver: this node may lack corruptions_dir
    meta_source = meta_validation_source(cfg, splits, paper=data.paper_pool)
    # GLC's stage 1 (label_noise.correction=glc) runs before the first report; a resumed or
    # exploited trial restores C_hat from its checkpoint instead
    resuming = tune.get_checkpoint() is not None
    corruption, glc_metrics = gold_stage_one(cfg, experiment, meta_source, resuming=resuming)
    trainer = Trainer(
        cfg,
        splits.train.images,
        splits.train.labels,
        splits.num_classes,
        meta_source=meta_source,
        trusted=None if experiment is None else experiment.trusted,
        corruption_matrix=corruption,
    )
    restored_from = _restore(trainer, cfg, trial_id)
    node_id = _node_id()
    while trainer.epoch < cfg.optim.epochs:
        try:
            metrics: dict[str, Any] = trainer.train_epoch()
        except DivergenceError as err:  # deterministic: retrying would diverge again
            if marker is not None:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(str(err))
            raise
        metrics["val_accuracy"] = trainer.evaluate(splits.val.images, splits.val.labels)
        metrics["val_corrupt_accuracy"] = trainer.evaluate(
            data.val_corrupt.images, data.val_corrupt.labels
        )
        metrics.update(adversarial_eval.epoch_metrics(trainer.model, splits.val, cfg.adversarial))
        metrics.update(ood_epoch_metrics(trainer, cfg, experiment))
        metrics.update(glc_metrics)  # once, with the first epoch
        glc_metrics = {}
        if trainer.epoch >= cfg.optim.epochs:
            metrics["clean_test_accuracy"] = trainer.evaluate(
                splits.test.images, splits.test.labels
            )
            metrics.update(corruption_metrics(trainer, data))
            metrics.update(
                adversarial_eval.final_metrics(trainer.model, splits.test, cfg.adversarial)
            )
            metrics.update(ood_final_metrics(trainer, cfg, experiment))
        metrics["time/trial_s"] = time.perf_counter() - start
        metrics["node_id"] = node_id
        if restored_from:
            metrics["restored_from"] = restored_from
            restored_from = None
        with tempfile.TemporaryDirectory() as tmp:
            save_checkpoint(trainer, Path(tmp, CHECKPOINT_FILE))
            info = {"trial_id": trial_id, "epoch": trainer.epoch, **lambdas_key(cfg)}
            Path(tmp, TRIAL_FILE).write_text(json.dumps(info))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def _divergence_marker(setup: dict[str, Any], trial_id: str) -> Path | None:
    """``<experiment dir>/diverged/<trial id>``: every attempt of a trial on every node (with
    shared storage) and after a resume sees it; None when the experiment is on remote storage."""
    directory = setup.get("diverged_dir")
    return Path(directory, trial_id) if directory else None


def _restore(trainer: Trainer, cfg: TrainConfig, trial_id: str) -> str | None:
    """Load ``tune.get_checkpoint()`` if any; return the donor's trial id after a PBT exploit."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        state = load_checkpoint(Path(directory, CHECKPOINT_FILE))
        info = json.loads(Path(directory, TRIAL_FILE).read_text())
    same_choice = {k: info.get(k) for k in lambdas_key(cfg)} == lambdas_key(cfg)
    trainer.load_state_dict(state["trainer"], weighting=same_choice)
    donor = str(info.get("trial_id"))
    return donor if donor != trial_id else None


def corruption_metrics(trainer: Trainer, data: TrialData) -> dict[str, float]:
    """``c15_accuracy``, ``c19_accuracy`` (when complete) and ``c/<corruption>`` on the test set."""
    from auxtune.data.evaluation import evaluate_in_memory

    report = evaluate_in_memory(
        trainer.model,
        data.corrupted_test.load(data.loaded_splits),
        trainer.device,
        autocast=trainer.autocast,
        fmt=trainer.memory_format,
    )
    metrics = {f"c/{name}": value for name, value in report.corruption_accuracy().items()}
    for key, value in (("c15_accuracy", report.mean_15), ("c19_accuracy", report.mean_19)):
        if value is not None:
            metrics[key] = value
    for severity, value in report.severity_means().items():
        metrics[f"c15_s{severity}_accuracy"] = value
    if report.mean_15 is None and report.mean_present is not None:
        metrics["c_present_accuracy"] = report.mean_present
    return metrics


def _node_id() -> str:
    import ray

    try:
        return str(ray.get_runtime_context().get_node_id())
    except Exception:  # outside Ray (direct calls in tests)
        return ""
