"""Corrupted labels: the noise of the GLC paper, drawn once from a seed and recorded.

A trusted fraction of the training split keeps its clean labels (stratified by class, so every
class has trusted images to estimate its row of C from); every other label of the train, val and
holdout splits is redrawn from row ``y`` of the corruption matrix C, C[i, j] = P(noisy j | clean i).
The test split is never touched: accuracy is always measured against clean labels.

    >>> corruption_matrix("pair", 0.25, 3)
    array([[0.75, 0.25, 0.  ],
           [0.  , 0.75, 0.25],
           [0.25, 0.  , 0.75]])
    >>> labels = np.repeat(np.arange(4), 250)
    >>> noisy = corrupt_labels(labels, corruption_matrix("uniform", 0.4, 4), np.random.default_rng(0))
    >>> round(float((noisy != labels).mean()), 2)  # p (K - 1) / K = 0.3 of the labels change
    0.3

Why val and holdout are noisy too: they come from the same labelling process as the training
split, and a search that maximised accuracy against clean validation labels would use far more
clean labels than the trusted fraction. Accuracy against noisy labels ranks models as clean
accuracy does in expectation under uniform noise (it is (1 - p) acc + p/K).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from auxtune.data.datasets import DatasetSplits, ImageSet
from auxtune.robust.config import LabelNoiseConfig

NOISY_SPLITS = ("train", "val", "holdout")  # the splits whose untrusted labels are corrupted


def corruption_matrix(kind: str, rate: float, num_classes: int) -> np.ndarray:
    """C (K, K), rows summing to 1: ``uniform`` mixes in the uniform distribution, ``pair`` moves
    mass ``rate`` from class c to c + 1 mod K."""
    identity = np.eye(num_classes)
    if kind == "uniform":
        return (1 - rate) * identity + rate / num_classes
    if kind == "pair":
        return (1 - rate) * identity + rate * np.roll(identity, 1, axis=1)
    raise ValueError(f"unknown label noise kind {kind!r}; valid kinds: uniform, pair")


def corrupt_labels(labels: np.ndarray, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each label ``y`` replaced by a draw from row ``y`` of ``matrix`` (inverse-CDF sampling)."""
    cumulative = np.cumsum(matrix, axis=1)[labels]
    draws = rng.random(len(labels))[:, None]
    noisy = (draws >= cumulative).sum(axis=1)
    return np.minimum(noisy, len(matrix) - 1).astype(np.int64)  # guards rounding of the last sum


def choose_trusted(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask: ``round(fraction * n_c)`` images of every class c (at least one when
    ``fraction > 0``), drawn at random."""
    trusted = np.zeros(len(labels), bool)
    if fraction <= 0:
        return trusted
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = max(1, round(fraction * len(members)))
        trusted[rng.choice(members, size=count, replace=False)] = True
    return trusted


def transition_counts(clean: np.ndarray, noisy: np.ndarray, num_classes: int) -> np.ndarray:
    """Realised (K, K) counts: [i, j] = images of clean class i labelled j."""
    flat = np.bincount(clean * num_classes + noisy, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


@dataclass(frozen=True)
class LabelNoise:
    """What the noise did: the matrix it was drawn from, the trusted images, the realised flips."""

    config: LabelNoiseConfig
    matrix: np.ndarray  # (K, K) C the noisy labels were drawn from
    trusted: np.ndarray  # bool (N_train,) images that kept their clean label
    clean_train_labels: np.ndarray  # (N_train,) the labels before corruption
    transitions: dict[str, np.ndarray]  # split -> realised (K, K) clean -> noisy counts

    def flipped(self, split: str = "train") -> int:
        """Labels of ``split`` that differ from the clean ones."""
        counts = self.transitions[split]
        return int(counts.sum() - np.trace(counts))

    def summary(self) -> str:
        """One line for a log: kind, rate, trusted images and flipped labels."""
        untrusted = int((~self.trusted).sum())
        cfg = self.config
        return (
            f"label noise {cfg.kind} p={cfg.rate:g} (seed {cfg.seed}): "
            f"{self.flipped('train')} of {untrusted} untrusted training labels changed, "
            f"{int(self.trusted.sum())} trusted, correction {cfg.correction}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (matrix, realised transitions per split, counts)."""
        return {
            "config": dataclasses.asdict(self.config),
            "matrix": self.matrix.tolist(),
            "trusted_images": int(self.trusted.sum()),
            "flipped": {split: self.flipped(split) for split in self.transitions},
            "transitions": {split: t.tolist() for split, t in self.transitions.items()},
        }


def apply_label_noise(
    splits: DatasetSplits, cfg: LabelNoiseConfig
) -> tuple[DatasetSplits, LabelNoise | None]:
    """``splits`` with corrupted train/val/holdout labels, and the record; unchanged (and None)
    when ``cfg`` changes nothing.

    Every split draws from its own seeded stream, so changing one split's size leaves the noise
    of the others as it was.
    """
    if not cfg.active:
        return splits, None
    k = splits.num_classes
    matrix = corruption_matrix(cfg.kind, cfg.rate, k)
    clean = splits.train.labels
    trusted = choose_trusted(clean, cfg.trusted_fraction, np.random.default_rng([cfg.seed, 0x7]))
    noisy: dict[str, ImageSet] = {}
    transitions: dict[str, np.ndarray] = {}
    for index, split in enumerate(NOISY_SPLITS):
        images = getattr(splits, split)
        rng = np.random.default_rng([cfg.seed, index])
        labels = corrupt_labels(images.labels, matrix, rng)
        if split == "train":
            labels = np.where(trusted, images.labels, labels)
        noisy[split] = ImageSet(images.images, labels)
        transitions[split] = transition_counts(images.labels, labels, k)
    record = LabelNoise(cfg, matrix, trusted, clean, transitions)
    corrupted = dataclasses.replace(
        splits, train=noisy["train"], val=noisy["val"], holdout=noisy["holdout"]
    )
    return corrupted, record
