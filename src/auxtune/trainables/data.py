"""Everything a trial reads, prepared once on the driver and shipped through Ray's object store.

:func:`prepare_trial_data` loads the splits, builds the leak-free corrupted validation set (the val
split under the 4 *extra* corruptions, never the 15 test ones) and materialises the corrupted test
blocks the final evaluation uses. ``tune.with_parameters`` puts the result in the object store once;
every trial (on any node) maps it read-only instead of re-reading or regenerating data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auxtune.data.cifar_c import SEVERITIES
from auxtune.data.datasets import DatasetSplits, ImageSet, load_corrupted_test, load_dataset
from auxtune.robust.config import DataConfig, TrainConfig

VAL_CORRUPT_IMAGES = 500  # images of the corrupted validation set (each under one corruption)
MAX_MATERIALIZED_BYTES = 1 << 30  # larger corrupted test sets are re-opened from disk by trials


@dataclass(frozen=True)
class CorruptedBlocks:
    """The corrupted test set a trial evaluates at its end: in memory, or a directory to re-open."""

    blocks: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] | None
    data: DataConfig  # to re-open the directory when ``blocks`` is None (must be shared storage)
    skip_first: int = 0

    def load(self, splits: DatasetSplits) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
        if self.blocks is not None:
            return self.blocks
        return materialize(load_corrupted_test(self.data, splits, skip_first=self.skip_first))


@dataclass(frozen=True)
class TrialData:
    splits: DatasetSplits
    val_corrupt: ImageSet
    corrupted_test: CorruptedBlocks


def absolute_data_config(data: DataConfig) -> DataConfig:
    """Trials chdir into their own directory: make every data path absolute first."""
    from auxtune.data.synthetic import cache_dir

    def resolve(path: str | None) -> str | None:
        return str(Path(path).expanduser().resolve()) if path else path

    data_dir = (
        str(cache_dir(data.data_dir).resolve()) if data.dataset == "synthetic" else data.data_dir
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


def materialize(suite: Any) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    """Every (corruption, severity) block of a :class:`CorruptedTestSet` as arrays."""
    return {
        (c, s): (suite.images(c, s), suite.labels(s)) for c in suite.corruptions for s in SEVERITIES
    }


def prepare_trial_data(cfg: TrainConfig) -> TrialData:
    """Load and build the trials' data on the driver (``cfg.data`` paths already absolute)."""
    splits = load_dataset(cfg.data)
    val_corrupt = corrupted_validation(splits.val, VAL_CORRUPT_IMAGES, seed=cfg.data.seed)
    skip = 0
    if cfg.weighting.name == "meta" and cfg.weighting.protocol == "paper":
        from auxtune.data.meta_validation import evaluation_skip

        skip = evaluation_skip("paper")
    suite = load_corrupted_test(cfg.data, splits, skip_first=skip)
    size = len(suite.corruptions) * len(SEVERITIES) * suite.images_per_block * 32 * 32 * 3
    blocks = materialize(suite) if size <= MAX_MATERIALIZED_BYTES else None
    return TrialData(splits, val_corrupt, CorruptedBlocks(blocks, cfg.data, skip))
