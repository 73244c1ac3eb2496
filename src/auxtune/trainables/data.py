"""Everything a trial reads, prepared once on the driver and shipped through Ray's object store.

:func:`prepare_trial_data` loads the splits, builds the leak-free corrupted validation set (the val
split under the 4 *extra* corruptions, never the 15 test ones) and prepares the corrupted test
blocks the final evaluation uses: a small set is materialised into the object store; a large one
(over ``max_materialized_bytes``; CIFAR-10-C is 2.9 GB) is staged once as Parquet on the shared
``storage`` (:mod:`auxtune.data.staging`) and each trial reads it from there block by block.
``tune.with_parameters`` puts the result in the object store once; every trial (on any node)
maps it read-only instead of re-reading or regenerating data. Given the shared storage, no trial
opens ``data.corruptions_dir``, which may exist on the driver's node only; without one (a single
machine), trials re-open a large set there themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxtune.data.cifar_c import SEVERITIES
from auxtune.data.datasets import DatasetSplits, ImageSet, load_corrupted_test
from auxtune.data.experiment import ExperimentData, prepare_experiment_data
from auxtune.errors import DataError
from auxtune.robust.config import EMBEDDED_DATASETS, DataConfig, TrainConfig

VAL_CORRUPT_IMAGES = 500  # images of the corrupted validation set (each under one corruption)
MAX_MATERIALIZED_BYTES = 1 << 30  # larger corrupted test sets go through shared storage

Blocks = Mapping[tuple[str, int], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class CorruptedBlocks:
    """The corrupted test set a trial evaluates at its end: arrays in the object store, a
    :class:`~auxtune.data.staging.StagedCorruptedSet` read from shared storage, or (``blocks``
    None: no shared storage, so a single machine) the directory of ``data`` re-opened."""

    blocks: Blocks | None
    data: DataConfig
    skip_first: int = 0
    class_map: np.ndarray | None = None  # classes held out as OOD (-1) are left out

    def load(self, splits: DatasetSplits) -> Blocks:
        """The blocks; ``splits`` as loaded (every class): its test labels check the files'."""
        if self.blocks is not None:
            return self.blocks
        suite = load_corrupted_test(self.data, splits, skip_first=self.skip_first)
        return materialize(suite, self.class_map)


@dataclass(frozen=True)
class TrialData:
    splits: DatasetSplits
    val_corrupt: ImageSet
    corrupted_test: CorruptedBlocks
    paper_pool: ImageSet | None = None  # the paper protocol's meta-validation images, if used
    # label noise (the trusted images, the noise record) and OOD sets; ``splits`` is its splits
    experiment: ExperimentData | None = None

    @property
    def loaded_splits(self) -> DatasetSplits:
        """The splits as loaded, before classes were held out and labels corrupted."""
        return self.splits if self.experiment is None else self.experiment.full


def absolute_data_config(data: DataConfig) -> DataConfig:
    """Trials chdir into their own directory: make every data path absolute first."""
    from auxtune.data.synthetic import cache_dir

    def resolve(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    data_dir = (
        str(cache_dir(data.data_dir).resolve())
        if data.dataset in EMBEDDED_DATASETS
        else data.data_dir
    )
    return dataclasses.replace(
        data, data_dir=resolve(data_dir), corruptions_dir=resolve(data.corruptions_dir)
    )


def corrupted_validation(val: ImageSet, num: int, seed: int) -> ImageSet:
    """The first ``num`` val images, each under a seeded one of the 4 extra corruptions and a
    severity (both uniform): the leak-free robustness signal searches maximise."""
    from auxtune.data.corruptions import EXTRA_CORRUPTIONS, corrupt

    subset = val.take(np.arange(min(num, len(val))))
    rng = np.random.default_rng([seed, 0xC0])
    which = rng.integers(len(EXTRA_CORRUPTIONS), size=len(subset))
    severity = rng.integers(1, len(SEVERITIES) + 1, size=len(subset))
    images = subset.images.copy()
    for k, name in enumerate(EXTRA_CORRUPTIONS):
        for s in SEVERITIES:
            group = np.flatnonzero((which == k) & (severity == s))
            if len(group):
                images[group] = corrupt(images[group], name, s, seed=seed)
    return ImageSet(images, subset.labels.copy())


def materialize(
    suite: Any, class_map: np.ndarray | None = None
) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """Every (corruption, severity) block of a :class:`CorruptedTestSet` as arrays; with a
    ``class_map`` only the images of classes it keeps, relabelled."""
    blocks = {
        (c, s): (suite.images(c, s), suite.labels(s)) for c in suite.corruptions for s in SEVERITIES
    }
    if class_map is None:
        return blocks
    kept = {key: class_map[labels] >= 0 for key, (_, labels) in blocks.items()}
    if not all(mask.any() for mask in kept.values()):
        raise DataError(
            f"a corrupted test block holds no image of the classes trained on (the first "
            f"{suite.images_per_block} of each were kept): raise data.c_images_per_block"
        )
    return {
        key: (images[kept[key]], class_map[labels[kept[key]]])
        for key, (images, labels) in blocks.items()
    }


def prepare_trial_data(
    cfg: TrainConfig,
    *,
    storage: str | None = None,
    max_materialized_bytes: int = MAX_MATERIALIZED_BYTES,
) -> TrialData:
    """Load and build the trials' data on the driver (``cfg.data`` paths already absolute).

    ``storage``: where every node can read (``tracking.storage``: a shared directory, ``s3://...``
    or another ``pyarrow.fs`` URI). A corrupted test set larger than ``max_materialized_bytes`` is
    staged there as Parquet (once per distinct set) for the trials to read; without ``storage``
    (one machine) trials re-open ``data.corruptions_dir`` themselves.
    """
    experiment = prepare_experiment_data(cfg)  # label noise and held-out (OOD) classes applied
    splits = experiment.splits
    val_corrupt = corrupted_validation(splits.val, VAL_CORRUPT_IMAGES, seed=cfg.data.seed)
    skip, paper = 0, None
    spec = cfg.weighting.meta_validation
    if spec is not None and spec.protocol == "paper":  # the paper protocol trains on test images
        from auxtune.data.meta_validation import evaluation_skip, paper_pool

        skip, paper = evaluation_skip("paper"), paper_pool(experiment.full, cfg.data)
    suite = load_corrupted_test(cfg.data, experiment.full, skip_first=skip)
    size = len(suite.corruptions) * len(SEVERITIES) * suite.images_per_block * 32 * 32 * 3
    class_map = experiment.class_map
    blocks: Blocks | None = None
    if size <= max_materialized_bytes:
        blocks = materialize(suite, class_map)
    elif storage and class_map is None:  # a staged copy keeps every class: held-out ones re-open
        from auxtune.data.staging import StagedCorruptedSet, stage_corrupted_set

        uri = stage_corrupted_set(suite.root, storage)
        blocks = StagedCorruptedSet(uri, skip_first=skip, first_k=cfg.data.c_images_per_block)
    corrupted = CorruptedBlocks(blocks, cfg.data, skip, class_map)
    return TrialData(splits, val_corrupt, corrupted, paper, experiment)
