"""Frozen, validated configuration of one training run (pure data; the module imports no torch).

:class:`TrainConfig` composes the sections. The sections of the plugin kinds live beside their
plugins and are checked against their registries, read when a config is built: ``tasks:``
(:mod:`auxtune.robust.tasks.config`) and ``weighting:`` (:mod:`auxtune.robust.weighting.config`,
each weighting's own section in its module); ``adversarial:`` is beside the attacks
(:mod:`auxtune.robust.adversarial_config`). The others are here, and every section is importable
from here.

The defaults are the seed paper's (Kim, Lee & Suh) optimizer settings on a small network; the
presets in ``configs/`` change the network and the budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from auxtune.config import check
from auxtune.robust.adversarial_config import (
    ATTACK_FORMS,
    ATTACK_NAME,
    THREAT_MODELS,
    AdversarialConfig,
)
from auxtune.robust.tasks.config import TasksConfig
from auxtune.robust.tasks.registry import task_names
from auxtune.robust.weighting.config import WeightingConfig

#: generated here, never downloaded (:data:`auxtune.data.embedded.EMBEDDED` draws them)
EMBEDDED_DATASETS = ("synthetic", "photo_shapes")
DATASETS = (*EMBEDDED_DATASETS, "cifar10", "cifar100")
SEED_LIMIT = 2**32  # seeds are in [0, 2**32): what numpy's legacy seeding and torch both take


def labelled_count(num_train: int, fraction: float) -> int:
    """How many of ``num_train`` training images keep their label (``data.labeled_fraction``)."""
    return num_train if fraction >= 1 else round(num_train * fraction)


def check_labelled_batch(data: DataConfig, num_train: int, batch_size: int) -> None:
    """The labelled images must fill one batch of the main loss (it draws batches of them)."""
    count = labelled_count(num_train, data.labeled_fraction)
    check(
        count >= batch_size,
        f"data.labeled_fraction = {data.labeled_fraction} labels {count} of the {num_train} "
        f"training images, fewer than one batch (optim.batch_size = {batch_size}); raise "
        "data.labeled_fraction or lower optim.batch_size",
    )


def check_seed(value: int, field: str) -> None:
    """Refuse a seed that numpy or torch would reject (negative) or overflow on."""
    check(0 <= value < SEED_LIMIT, f"{field} = {value} must be in [0, 2**32)")


#: OOD test sets (:mod:`auxtune.data.ood`) and detectors (:mod:`auxtune.robust.ood`), by name
OOD_SETS = ("heldout", "uniform", "gaussian", "cifar100")
OOD_DETECTORS = ("msp", "max_logit", "energy", "rotation")
OOD_DETECTOR_TASKS = {"rotation": "rotation"}  # detectors that read an auxiliary task's head


def ood_detectors(tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The OOD detectors a model trained with the auxiliary ``tasks`` supports.

    >>> ood_detectors(("jigsaw",)), ood_detectors(("rotation",))[-1]
    (('msp', 'max_logit', 'energy'), 'rotation')
    """
    return tuple(
        d for d in OOD_DETECTORS if d not in OOD_DETECTOR_TASKS or OOD_DETECTOR_TASKS[d] in tasks
    )


@dataclass(frozen=True)
class ModelConfig:
    """WideResNet-depth-widen for 32x32 inputs; depth must be 6n+4 (WRN-40-2 is the paper's)."""

    depth: int = 16
    widen_factor: int = 2
    dropout: float = 0.0
    base_width: int = 16  # channels of the stem; 16 is the WRN paper's, tiny test models use 4-8

    def __post_init__(self) -> None:
        check(
            self.depth >= 4 and (self.depth - 4) % 6 == 0,
            f"model.depth = {self.depth} is not 6n+4; use e.g. 10, 16, 28 or 40",
        )
        check(self.widen_factor >= 1, f"model.widen_factor = {self.widen_factor} must be >= 1")
        check(0.0 <= self.dropout < 1.0, f"model.dropout = {self.dropout} must be in [0, 1)")
        check(self.base_width >= 1, f"model.base_width = {self.base_width} must be >= 1")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with Nesterov momentum and a cosine schedule from ``lr`` down to ``min_lr``."""

    lr: float = 0.1  # peak learning rate, per step (batch-size independent here: no rescaling)
    min_lr: float = 1e-6  # end of the cosine schedule
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    # images per step; each auxiliary task sees its own view of the same batch
    batch_size: int = 128
    epochs: int = 10

    def __post_init__(self) -> None:
        check(self.lr > 0, f"optim.lr = {self.lr} must be > 0")
        check(0 <= self.min_lr <= self.lr, f"optim.min_lr = {self.min_lr} must be in [0, optim.lr]")
        check(0 <= self.momentum < 1, f"optim.momentum = {self.momentum} must be in [0, 1)")
        check(self.weight_decay >= 0, f"optim.weight_decay = {self.weight_decay} must be >= 0")
        check(self.batch_size >= 2, f"optim.batch_size = {self.batch_size} must be >= 2")
        check(self.epochs >= 1, f"optim.epochs = {self.epochs} must be >= 1")


@dataclass(frozen=True)
class DataConfig:
    """Which images to train and evaluate on."""

    dataset: str = "synthetic"  # synthetic | photo_shapes (embedded) | cifar10 | cifar100
    data_dir: str | None = None  # CIFAR python-layout root (cifar10/cifar100); embedded: cache dir
    corruptions_dir: str | None = None  # CIFAR-C layout directory (.npy or Parquet) for evaluation
    download: bool = False  # let torchvision download CIFAR (never in tests: no network)
    num_train: int = 5000  # embedded datasets only: images per split
    num_val: int = 1000
    num_test: int = 1000
    # images of the training split kept out for meta-validation (holdout protocol)
    holdout: int = 1000
    # corrupted evaluation uses the first K images of each block; 0 = all
    c_images_per_block: int = 0
    augment: bool = True  # random crop (pad 4) and horizontal flip of every training batch
    seed: int = 0  # embedded data's generation seed; CIFAR's val/holdout split (not training's)
    # share of the training images whose labels the main loss sees (a class-balanced subset,
    # fixed by data.seed); the auxiliary tasks train on every image. 1 = all labelled
    labeled_fraction: float = 1.0

    def __post_init__(self) -> None:
        check(
            self.dataset in DATASETS,
            f"data.dataset: unknown dataset {self.dataset!r}; valid datasets: {', '.join(DATASETS)}",
        )
        for name in ("num_train", "num_val", "num_test"):
            check(getattr(self, name) >= 1, f"data.{name} = {getattr(self, name)} must be >= 1")
        check(self.holdout >= 0, f"data.holdout = {self.holdout} must be >= 0")
        check(self.c_images_per_block >= 0, "data.c_images_per_block must be >= 0 (0 = all)")
        check(
            0 < self.labeled_fraction <= 1,
            f"data.labeled_fraction = {self.labeled_fraction} must be in (0, 1]: the share of "
            "training images whose labels the main loss sees (1 = all)",
        )
        check_seed(self.seed, "data.seed")
        if self.dataset in EMBEDDED_DATASETS and not self.corruptions_dir:  # else: from files
            check(
                self.c_images_per_block <= self.num_test,
                f"data.c_images_per_block = {self.c_images_per_block} is more than the "
                f"data.num_test = {self.num_test} images of each corrupted block; use at most "
                "that, or 0 for all",
            )


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the math runs."""

    device: str = "auto"  # auto (cuda if available, else cpu) | cpu | cuda | cuda:N
    compile: bool = False  # torch.compile the model
    bf16: bool = True  # bf16 autocast, on CUDA only
    channels_last: bool = True  # memory format of images and weights (faster on CUDA and CPU)
    threads: int = 0  # torch intra-op threads on CPU; 0 leaves torch's default

    def __post_init__(self) -> None:
        ok = self.device in ("auto", "cpu", "cuda") or _is_cuda_index(self.device)
        check(ok, f"runtime.device = {self.device!r}; choose auto, cpu, cuda or cuda:N")
        check(self.threads >= 0, f"runtime.threads = {self.threads} must be >= 0")


def _is_cuda_index(device: str) -> bool:
    index = device.removeprefix("cuda:")
    return device.startswith("cuda:") and index.isascii() and index.isdigit()


@dataclass(frozen=True)
class LabelNoiseConfig:
    """Corrupted training labels, a trusted clean fraction, and Gold Loss Correction.

    A ``trusted_fraction`` of the training split (stratified by class) keeps its clean labels;
    every other label of the train, val and holdout splits is redrawn from row ``y`` of the
    corruption matrix C (the test split stays clean). ``uniform`` (the GLC paper's): with
    probability ``rate`` a class drawn uniformly from all K, C = (1 - p) I + p/K 11^T; ``pair``
    (pair flip): class c becomes c + 1 mod K with probability ``rate``. ``glc`` (Hendrycks,
    Mazeika, Wilson & Gimpel 2018) first trains a model on the untrusted images, estimates C from
    its softmax on the trusted images, then trains the model that is kept with the corrected loss.
    """

    rate: float = 0.0  # corruption strength p; 0 = clean labels
    kind: Literal["uniform", "pair"] = "uniform"
    trusted_fraction: float = 0.0  # of the training split, per class; their labels stay clean
    correction: Literal["none", "glc"] = "none"
    seed: int = 0  # the noise and the trusted images (independent of the training seed)

    def __post_init__(self) -> None:
        check(0 <= self.rate < 1, f"label_noise.rate = {self.rate} must be in [0, 1)")
        check(
            0 <= self.trusted_fraction < 1,
            f"label_noise.trusted_fraction = {self.trusted_fraction} must be in [0, 1)",
        )
        check(
            self.correction != "glc" or self.trusted_fraction > 0,
            f"label_noise.trusted_fraction = {self.trusted_fraction}: correction glc estimates the "
            "corruption matrix from trusted images; set a fraction in (0, 1), e.g. 0.05",
        )

    @property
    def active(self) -> bool:
        """Whether the labels or the training change at all (else the splits are used as given)."""
        return self.rate > 0 or self.trusted_fraction > 0 or self.correction != "none"


@dataclass(frozen=True)
class OODConfig:
    """Out-of-distribution detection: classes kept out of training, and what a trial is scored on.

    ``test_classes`` and ``val_classes`` (class indices of the dataset) are removed from every
    split; the remaining classes are renumbered 0..K'-1. A trial scores each epoch how well the
    detectors tell the val split from the ``val_classes`` images (``val_ood_auroc``: leak-free,
    for these are other classes than the test ones) and, at its end, the test split against each
    of ``sets``: ``heldout`` (the ``test_classes`` images of the test split), ``uniform`` and
    ``gaussian`` noise images, ``cifar100`` (its test split, e.g. against a cifar10 model).
    ``detector`` names the headline score (``val_ood_auroc``, ``ood_auroc``, ...); every detector
    the model supports is reported as well.
    """

    test_classes: tuple[int, ...] = ()
    val_classes: tuple[int, ...] = ()
    sets: tuple[str, ...] = ()
    detector: str = "msp"  # msp | max_logit | energy | rotation (needs the rotation task)

    def __post_init__(self) -> None:
        held_out = (*self.test_classes, *self.val_classes)
        check(all(c >= 0 for c in held_out), f"ood: class indices {list(held_out)} must be >= 0")
        check(
            len(set(held_out)) == len(held_out),
            f"ood.test_classes {list(self.test_classes)} and ood.val_classes "
            f"{list(self.val_classes)} must not repeat a class",
        )
        for name in self.sets:
            check(
                name in OOD_SETS,
                f"ood.sets: unknown set {name!r}; valid sets: {', '.join(OOD_SETS)}",
            )
        check(len(set(self.sets)) == len(self.sets), f"ood.sets has duplicates: {self.sets}")
        check(
            "heldout" not in self.sets or bool(self.test_classes),
            "ood.sets lists heldout, the images of ood.test_classes, but ood.test_classes is "
            "empty: name the classes to hold out, e.g. ood.test_classes=[8,9]",
        )
        check(
            self.detector in OOD_DETECTORS,
            f"ood.detector: unknown detector {self.detector!r}; valid detectors: "
            f"{', '.join(OOD_DETECTORS)}",
        )

    @property
    def held_out_classes(self) -> tuple[int, ...]:
        """Every class kept out of training, in increasing order."""
        return tuple(sorted((*self.test_classes, *self.val_classes)))


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs; ``auxtune train`` builds it from YAML + overrides."""

    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    label_noise: LabelNoiseConfig = field(default_factory=LabelNoiseConfig)
    ood: OODConfig = field(default_factory=OODConfig)

    def __post_init__(self) -> None:
        check_seed(self.seed, "seed")
        check_seed(self.label_noise.seed, "label_noise.seed")
        if self.data.dataset in EMBEDDED_DATASETS:  # CIFAR's split sizes: checked when read
            check(
                self.optim.batch_size <= self.data.num_train,
                f"optim.batch_size = {self.optim.batch_size} is more than the data.num_train = "
                f"{self.data.num_train} training images, so no batch fits; lower it or raise "
                "data.num_train",
            )
            check_labelled_batch(self.data, self.data.num_train, self.optim.batch_size)
        self._check_few_labels()
        self._check_ood()
        for task in self.weighting.lambdas:
            check(
                task in self.tasks.names,
                f"weighting.lambdas.{task} is set but {task!r} is not in tasks.names {list(self.tasks.names)}",
            )
        if self.weighting.options is not None:
            self.weighting.options.check_with(self)

    def _check_few_labels(self) -> None:
        if self.data.labeled_fraction == 1:
            return
        check(
            not self.label_noise.active,
            "data.labeled_fraction < 1 and label_noise cannot be combined: label_noise already "
            "splits the labels into trusted and untrusted ones; set one of them",
        )
        check(
            not self.adversarial.train,
            "data.labeled_fraction < 1 and adversarial.train cannot be combined: the training "
            "attack needs the label of every image it perturbs; set data.labeled_fraction=1",
        )

    def _check_ood(self) -> None:
        needs = OOD_DETECTOR_TASKS.get(self.ood.detector)
        check(
            needs is None or needs in self.tasks.names,
            f"ood.detector = {self.ood.detector!r} scores with the {needs} head, but tasks.names = "
            f"{list(self.tasks.names)} has no {needs} task",
        )
        check(
            "cifar100" not in self.ood.sets or self.data.dataset != "cifar100",
            "ood.sets lists cifar100, but data.dataset = 'cifar100' trains on it",
        )
        spec = self.weighting.meta_validation
        paper = spec is not None and spec.protocol == "paper"
        check(
            not (paper and self.ood.held_out_classes),
            "ood.test_classes/val_classes hold classes out of training, but the meta-validation "
            "protocol 'paper' meta-validates on CIFAR-C images of every class; use protocol holdout",
        )


__all__ = [
    "ATTACK_FORMS",
    "ATTACK_NAME",
    "DATASETS",
    "OOD_DETECTORS",
    "OOD_DETECTOR_TASKS",
    "OOD_SETS",
    "THREAT_MODELS",
    "AdversarialConfig",
    "DataConfig",
    "LabelNoiseConfig",
    "ModelConfig",
    "OODConfig",
    "OptimConfig",
    "RuntimeConfig",
    "TasksConfig",
    "TrainConfig",
    "WeightingConfig",
    "check_seed",
    "ood_detectors",
    "task_names",
]
