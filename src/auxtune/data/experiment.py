"""The data one training run sees, prepared the same way by ``auxtune train``, a search's trials
and ``auxtune evaluate``: the dataset's splits minus the classes held out as OOD, with corrupted
labels, and the OOD images the run is scored against; with ``data.labeled_fraction`` < 1, only that share of
the training labels is kept.

Order matters: classes are held out first (the label noise then draws among the K' classes that
remain; the labelled subset is balanced over them), and the test split is never corrupted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from auxtune.config import ConfigError
from auxtune.data.datasets import DatasetSplits, ImageSet, load_dataset
from auxtune.data.few_labels import hide_labels
from auxtune.data.label_noise import LabelNoise, apply_label_noise
from auxtune.data.ood import NOISE_SETS, cifar100_images, class_map, hold_out_classes, noise_images
from auxtune.robust.config import OOD_SETS, TrainConfig


@dataclass(frozen=True)
class ExperimentData:
    # as training sees them: in-distribution classes, corrupted labels, unlabelled images at -1
    splits: DatasetSplits
    full: DatasetSplits  # as loaded: every class, clean labels (the corrupted test set's source)
    label_noise: LabelNoise | None = None
    class_map: np.ndarray | None = None  # original class -> training class, -1 if held out
    ood_val: np.ndarray | None = None  # images of ood.val_classes from the val split
    ood_test: dict[str, np.ndarray] = field(default_factory=dict)  # OOD test sets by name
    key: dict[str, Any] = field(default_factory=dict)  # what it was prepared for (data_key)

    @property
    def trusted(self) -> np.ndarray | None:
        """Training images whose labels stayed clean (None without label noise)."""
        return None if self.label_noise is None else self.label_noise.trusted


def data_key(cfg: TrainConfig) -> dict[str, Any]:
    """The label-noise, labelled-share and OOD settings the prepared data depends on (the
    correction does not)."""
    noise = dataclasses.replace(cfg.label_noise, correction="none")
    return {
        "label_noise": noise,
        "labeled_fraction": cfg.data.labeled_fraction,
        "held_out": cfg.ood.held_out_classes,
        "ood_sets": cfg.ood.sets,
    }


def check_prepared_for(experiment: ExperimentData, cfg: TrainConfig) -> None:
    """Refuse a run whose label-noise or OOD settings differ from those the data was made with
    (a trial overriding ``label_noise.rate`` would otherwise train on the base's noise)."""
    wanted = data_key(cfg)
    for name, value in experiment.key.items():
        if wanted[name] != value:
            raise ConfigError(
                f"this run's {name} ({wanted[name]}) differs from the one its data was prepared "
                f"with ({value}): label_noise (but correction), data.labeled_fraction and ood "
                "classes/sets cannot vary between the trials of one search; prepare the data "
                "per setting"
            )


def prepare_experiment_data(
    cfg: TrainConfig, splits: DatasetSplits | None = None
) -> ExperimentData:
    """Hold out ``cfg.ood``'s classes, corrupt labels per ``cfg.label_noise``, keep
    ``cfg.data.labeled_fraction`` of the training labels, build the OOD sets.

    ``splits`` (default: ``load_dataset(cfg.data)``) must hold every class with clean labels.
    With neither section set, ``splits`` comes back as it is.
    """
    full = load_dataset(cfg.data) if splits is None else splits
    held_out = cfg.ood.held_out_classes
    in_distribution = hold_out_classes(full, held_out)
    noisy, record = apply_label_noise(in_distribution, cfg.label_noise)
    return ExperimentData(
        splits=hide_labels(noisy, cfg.data, cfg.optim.batch_size),
        full=full,
        label_noise=record,
        class_map=class_map(full.num_classes, held_out) if held_out else None,
        ood_val=_of_classes(full.val, cfg.ood.val_classes) if cfg.ood.val_classes else None,
        ood_test={name: build_ood_set(name, cfg, full, noisy) for name in cfg.ood.sets},
        key=data_key(cfg),
    )


def build_ood_set(
    name: str, cfg: TrainConfig, full: DatasetSplits, splits: DatasetSplits
) -> np.ndarray:
    """The OOD test set ``name`` (one of ``OOD_SETS``) for a model trained on ``splits``.

    ``heldout``: the ``ood.test_classes`` images of the full test split; noise: as many images as
    the in-distribution test split (so the metrics weigh both alike), seeded by ``data.seed``.
    """
    if name == "heldout":
        return _of_classes(full.test, cfg.ood.test_classes)
    if name in NOISE_SETS:
        return noise_images(name, len(splits.test), seed=cfg.data.seed)
    if name == "cifar100":
        return cifar100_images(cfg.data.data_dir)
    raise ValueError(f"unknown OOD set {name!r}; valid sets: {', '.join(OOD_SETS)}")


def _of_classes(images: ImageSet, classes: tuple[int, ...]) -> np.ndarray:
    return images.images[np.isin(images.labels, classes)]
