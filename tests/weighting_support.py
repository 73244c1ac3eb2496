"""What the weighting tests share: a deterministic meta-validation source for a Trainer."""

from __future__ import annotations

import numpy as np


class TinyMetaSource:
    """Deterministic meta-validation batches by index (uint8 NHWC, labels of 10 classes)."""

    def __init__(self, num_classes: int = 10) -> None:
        rng = np.random.default_rng(7)
        self.images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
        self.labels = rng.integers(0, num_classes, 12)

    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        pick = np.arange(index, index + 4) % len(self.labels)
        return self.images[pick], self.labels[pick]
