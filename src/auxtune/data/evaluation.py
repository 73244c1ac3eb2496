"""Accuracy on a corrupted test set: per corruption and severity, and the means people report.

``mean_15`` is the standard CIFAR-C number (AugMix, RobustBench): the mean over the 15 standard
corruptions of each corruption's mean over severities 1..5, the headline. ``mean_19`` adds the
four extra corruptions, as the seed paper (Kim, Lee & Suh) reports. A mean is ``None`` when any of
its corruptions or severities is missing, and ``notes`` says what is missing: a partial set never
silently averages fewer corruptions (``mean_present`` is that average, named as such).

    >>> counts = {(c, s): 75 for c in STANDARD_CORRUPTIONS for s in SEVERITIES}
    >>> report = summarize(counts, dict.fromkeys(counts, 100))
    >>> report.mean_15, report.mean_19
    (0.75, None)
    >>> report.notes[0]
    'mean_19 unavailable: missing speckle_noise, gaussian_blur, spatter, saturate'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auxtune.data._files import save_json
from auxtune.data.cifar_c import SEVERITIES
from auxtune.data.corruptions import CORRUPTIONS, STANDARD_CORRUPTIONS
from auxtune.robust.checkpoint import load_model
from auxtune.robust.device import autocast_factory, memory_format
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.trainer import predict

Key = tuple[str, int]  # (corruption, severity)
Blocks = Mapping[
    Key, tuple[np.ndarray, np.ndarray]
]  # -> (uint8 images (N, 32, 32, 3), labels (N,))


@dataclasses.dataclass(frozen=True)
class CorruptionReport:
    """Correct and total counts per corruption and severity, and the accuracies derived from them.

    ``skip_first``/``first_k`` record which images of every severity block were evaluated (the
    ``paper`` protocol skips its 100 meta-validation images; 0 = none skipped / all kept).
    """

    correct: dict[str, dict[int, int]]
    total: dict[str, dict[int, int]]
    clean: float | None = None
    protocol: str = "standard"
    skip_first: int = 0
    first_k: int = 0

    def accuracy(self) -> dict[str, dict[int, float]]:
        return {
            c: {s: n / self.total[c][s] for s, n in sorted(by_s.items())}
            for c, by_s in self.correct.items()
        }

    def corruption_accuracy(self) -> dict[str, float]:
        """Each corruption's mean over the severities it has."""
        return {c: float(np.mean(list(by_s.values()))) for c, by_s in self.accuracy().items()}

    @property
    def mean_15(self) -> float | None:
        """Mean over the 15 standard corruptions (the headline); None if any is incomplete."""
        return self._mean_of(STANDARD_CORRUPTIONS)

    @property
    def mean_19(self) -> float | None:
        """Mean over all 19 (the seed paper's number); None if any is incomplete."""
        return self._mean_of(CORRUPTIONS)

    def severity_means(self, names: tuple[str, ...] = STANDARD_CORRUPTIONS) -> dict[int, float]:
        """Mean accuracy over the corruptions ``names`` at each severity they all have."""
        accuracy = self.accuracy()
        present = [accuracy[c] for c in names if c in accuracy]
        if len(present) != len(names):
            return {}
        common = set.intersection(*(set(row) for row in present))
        return {s: float(np.mean([row[s] for row in present])) for s in sorted(common)}

    @property
    def mean_present(self) -> float | None:
        """Mean over whatever corruptions are present: for partial sets, never the headline."""
        values = list(self.corruption_accuracy().values())
        return float(np.mean(values)) if values else None

    def _mean_of(self, names: tuple[str, ...]) -> float | None:
        if self._missing(names):
            return None
        by_corruption = self.corruption_accuracy()
        return float(np.mean([by_corruption[c] for c in names]))

    def _missing(self, names: tuple[str, ...]) -> list[str]:
        return [c for c in names if set(self.correct.get(c, ())) != set(SEVERITIES)]

    @property
    def notes(self) -> list[str]:
        """What keeps a mean from being computed, and what it leaves out."""
        notes = []
        for label, names in (("mean_15", STANDARD_CORRUPTIONS), ("mean_19", CORRUPTIONS)):
            missing = self._missing(names)
            if missing:
                notes.append(f"{label} unavailable: missing {', '.join(missing)}")
        for c, by_s in self.correct.items():
            if c in CORRUPTIONS and set(by_s) != set(SEVERITIES):
                notes.append(f"{c} has severities {sorted(by_s)} only")
        unknown = [c for c in self.correct if c not in CORRUPTIONS]
        if unknown:
            notes.append(
                f"not CIFAR-C corruptions, left out of mean_15/mean_19: {', '.join(unknown)}"
            )
        return notes

    # -- output ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (severities become string keys)."""

        def by_severity(table: Mapping[str, Mapping[int, Any]]) -> dict[str, dict[str, Any]]:
            return {c: {str(s): v for s, v in sorted(row.items())} for c, row in table.items()}

        return {
            "protocol": self.protocol,
            "skip_first": self.skip_first,
            "first_k": self.first_k,
            "mean_15": self.mean_15,
            "mean_19": self.mean_19,
            "mean_present": self.mean_present,
            "clean": self.clean,
            "corruption_accuracy": self.corruption_accuracy(),
            "accuracy": by_severity(self.accuracy()),
            "correct": by_severity(self.correct),
            "total": by_severity(self.total),
            "images": sum(sum(row.values()) for row in self.total.values()),
            "notes": self.notes,
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` atomically (a reader never sees half a file)."""
        save_json(path, self.to_dict())
        return Path(path)

    def format_table(self) -> str:
        """Accuracy in percent, one row per corruption (standard ones first), means below."""
        accuracy, by_corruption = self.accuracy(), self.corruption_accuracy()
        width = max([len("corruption"), *map(len, accuracy)])
        header = f"{'corruption':<{width}}" + "".join(f"{f's{s}':>8}" for s in SEVERITIES)
        lines = [header + f"{'mean':>8}", "-" * (len(header) + 8)]
        for c in _display_order(accuracy):
            cells = "".join(_percent(accuracy[c].get(s)) for s in SEVERITIES)
            lines.append(f"{c:<{width}}{cells}{_percent(by_corruption[c])}")
        lines.append("")
        lines.append(f"mean over the 15 standard corruptions (headline): {_describe(self.mean_15)}")
        lines.append(f"mean over all 19 corruptions (seed paper's):      {_describe(self.mean_19)}")
        if self.mean_15 is None or self.mean_19 is None:
            lines.append(
                f"mean over the {len(accuracy)} present (partial set):       {_describe(self.mean_present)}"
            )
        if self.clean is not None:
            lines.append(f"clean accuracy: {_describe(self.clean)}")
        if self.skip_first or self.first_k:
            kept = f"the next {self.first_k}" if self.first_k else "the rest"
            lines.append(
                f"{self.protocol} protocol: skipped the first {self.skip_first} images of every "
                f"block, evaluated {kept}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _display_order(names: Mapping[str, Any]) -> list[str]:
    return [c for c in CORRUPTIONS if c in names] + sorted(c for c in names if c not in CORRUPTIONS)


def _percent(value: float | None) -> str:
    return f"{'-':>8}" if value is None else f"{100 * value:8.2f}"


def _describe(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def summarize(
    correct_counts: Mapping[Key, int], totals: Mapping[Key, int], **details: Any
) -> CorruptionReport:
    """A report from correct/total counts keyed by (corruption, severity).

    ``details`` are the other :class:`CorruptionReport` fields (``clean``, ``protocol``, ...).
    """
    if set(correct_counts) != set(totals):
        raise ValueError("correct_counts and totals must have the same (corruption, severity) keys")
    correct: dict[str, dict[int, int]] = {}
    total: dict[str, dict[int, int]] = {}
    for (corruption, severity), n in totals.items():
        hits = int(correct_counts[corruption, severity])
        if not 0 <= hits <= int(n) or int(n) == 0:
            raise ValueError(f"{corruption} s{severity}: {hits} correct of {n} images")
        correct.setdefault(corruption, {})[int(severity)] = hits
        total.setdefault(corruption, {})[int(severity)] = int(n)
    return CorruptionReport(correct, total, **details)


# ---------------------------------------------------------------------------------- evaluation
def load_for_inference(
    checkpoint: str | Path, device: torch.device | str
) -> tuple[MultiHeadNet, Callable[[], Any], torch.memory_format]:
    """The checkpoint's model on ``device`` with the autocast and memory format it trained with."""
    model, cfg = load_model(checkpoint, device)
    device = torch.device(device)
    fmt = memory_format(cfg.runtime)
    return model.to(memory_format=fmt), autocast_factory(device, cfg.runtime), fmt


def evaluate_in_memory(
    model: torch.nn.Module,
    blocks: Blocks,
    device: torch.device | str,
    batch_size: int = 1024,
    *,
    autocast: Callable[[], Any] | None = None,
    fmt: torch.memory_format = torch.contiguous_format,
    **details: Any,
) -> CorruptionReport:
    """Evaluate every (corruption, severity) block held in memory: the plain PyTorch loop."""
    correct, total = {}, {}
    for key, (images, labels) in blocks.items():
        predicted = predict(model, images, torch.device(device), batch_size, autocast, fmt)
        correct[key] = int((predicted.cpu() == torch.as_tensor(np.asarray(labels)).long()).sum())
        total[key] = len(labels)
    return summarize(correct, total, **details)
