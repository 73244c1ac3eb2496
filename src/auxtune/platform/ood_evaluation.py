"""``auxtune evaluate --ood``: how well a checkpoint's detectors tell its test images from OOD ones.

Kept apart from the corrupted-test evaluation that shares the command: ``evaluate`` adds these
flags and calls :func:`run_ood`. The in-distribution images are the checkpoint's own test split
(its held-out classes removed, as in training); every detector the model supports is scored.

    auxtune evaluate runs/train/ood/model.pt --ood heldout --ood uniform --ood gaussian
    auxtune evaluate runs/train/c10/model.pt --ood cifar100 --data-dir ~/data
    auxtune evaluate runs/train/ood/model.pt --ood my_outliers.npz --json ood.json
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from auxtune.errors import UserError
from auxtune.robust.config import EMBEDDED_DATASETS, OOD_SETS, TrainConfig

IMAGE_FILE_SUFFIXES = (".npy", ".npz")


def add_ood_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ood",
        action="append",
        default=[],
        metavar="SET",
        help="score the OOD detectors against SET (repeatable): heldout (the classes the model "
        "was trained without, ood.test_classes), uniform or gaussian (noise images), cifar100 "
        "(its test split, from --data-dir), or a .npy/.npz file of uint8 (N, 32, 32, 3) images",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="CIFAR root (python layout) for a CIFAR model's test images and --ood cifar100 "
        "(default: the checkpoint's data.data_dir)",
    )


def run_ood(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]] | None:
    """Evaluate and print the ``--ood`` sets; None when none was asked for."""
    if not args.ood:
        return None
    results, inliers = evaluate_checkpoint(
        args.checkpoint, args.ood, data_dir=args.data_dir, batch_size=args.batch_size
    )
    print(format_table(results, inliers))
    return {s: {d: m.as_dict() for d, m in by.items()} for s, by in results.items()}


def evaluate_checkpoint(
    checkpoint: str | Path,
    sets: Sequence[str],
    *,
    data_dir: str | None = None,
    batch_size: int = 1024,
) -> tuple[dict[str, Any], str]:
    """``{set: {detector: DetectionMetrics}}`` and a description of the in-distribution images."""
    from auxtune.data.experiment import prepare_experiment_data
    from auxtune.robust.checkpoint import load_model
    from auxtune.robust.ood import evaluate_ood

    try:
        model, cfg = load_model(checkpoint)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    cfg = _in_distribution_only(cfg, data_dir)
    experiment = prepare_experiment_data(cfg)
    ood = {_set_name(spec): _load_set(spec, cfg, experiment, data_dir) for spec in sets}
    test = experiment.splits.test
    device = next(model.parameters()).device
    results = evaluate_ood(model, test.images, ood, device, batch_size=batch_size)
    where = (
        f"{len(test)} {experiment.splits.name} test images, {experiment.splits.num_classes} classes"
    )
    return results, where


def refuse_held_out_classes(checkpoint: str | Path) -> None:
    """A model trained without some classes cannot be scored on a corrupted set of all of them
    (its labels are renumbered): say so instead of reporting wrong accuracies."""
    from auxtune.robust.checkpoint import config_of, load_checkpoint

    try:
        cfg = config_of(load_checkpoint(checkpoint))
    except (FileNotFoundError, ValueError) as err:
        raise UserError(str(err)) from err
    if cfg.ood.held_out_classes:
        raise UserError(
            f"--corruptions: this model was trained without classes "
            f"{list(cfg.ood.held_out_classes)} (ood.test_classes/val_classes), so the corrupted "
            "set's labels do not match its classes; a search trial reports its corrupted accuracy"
        )


def _in_distribution_only(cfg: TrainConfig, data_dir: str | None) -> TrainConfig:
    """The checkpoint's config building no OOD set of its own, reading CIFAR from ``data_dir``."""
    data = cfg.data
    if data_dir is not None and data.dataset not in EMBEDDED_DATASETS:
        data = dataclasses.replace(data, data_dir=data_dir)
    return dataclasses.replace(cfg, data=data, ood=dataclasses.replace(cfg.ood, sets=()))


def _set_name(spec: str) -> str:
    return spec if spec in OOD_SETS else Path(spec).stem


def _load_set(spec: str, cfg: TrainConfig, experiment: Any, data_dir: str | None) -> Any:
    from auxtune.data.experiment import build_ood_set
    from auxtune.data.ood import cifar100_images, load_image_file

    if spec == "heldout" and not cfg.ood.test_classes:
        raise UserError(
            "--ood heldout: this model was trained on every class (its ood.test_classes is "
            "empty); train one with ood.test_classes=[...] to hold classes out"
        )
    if spec == "cifar100":
        directory = data_dir or (
            None if cfg.data.dataset in EMBEDDED_DATASETS else cfg.data.data_dir
        )
        if directory is None:
            raise UserError("--ood cifar100 reads DIR/cifar-100-python/: give --data-dir DIR")
        return cifar100_images(directory)
    if spec in OOD_SETS:
        return build_ood_set(spec, cfg, experiment.full, experiment.splits)
    if Path(spec).suffix in IMAGE_FILE_SUFFIXES:
        return load_image_file(spec)
    raise UserError(
        f"--ood {spec}: unknown OOD set; choose {', '.join(OOD_SETS)} or a .npy/.npz file"
    )


def format_table(results: Mapping[str, Mapping[str, Any]], inliers: str) -> str:
    """One row per set and detector: AUROC, AUPR (OOD positive), FPR95 (lower is better)."""
    lines = [
        f"OOD detection against {inliers}",
        f"{'set':<16}{'detector':<12}{'AUROC':>8}{'AUPR':>8}{'FPR95':>8}",
    ]
    for name, by_detector in results.items():
        for detector, m in by_detector.items():
            lines.append(f"{name:<16}{detector:<12}{m.auroc:>8.4f}{m.aupr:>8.4f}{m.fpr95:>8.4f}")
    return "\n".join(lines)
