"""The ``tasks:`` section of a run: which self-supervised heads train, and the knobs of their views.

Pure data, no torch: :class:`~auxtune.robust.config.TrainConfig` composes it. Task names are checked
against the registry (:mod:`auxtune.robust.tasks.registry`), read when a config is built.

    >>> TasksConfig(names=("rotation", "jigsaw")).loss_scale("jigsaw")
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from auxtune.config import check
from auxtune.robust.tasks.registry import task_names


@dataclass(frozen=True)
class TasksConfig:
    """Which self-supervised heads to train, and the knobs their transforms take."""

    names: tuple[str, ...] = ("rotation",)
    # pixels; blurred reconstruction's Gaussian (the original's 7/255 px was a no-op)
    blur_sigma: float = 1.0
    decoder_width: int = 256  # first channel count of the 256-128-64 transposed-conv decoders
    # which forwards move the backbone's BatchNorm running statistics, what evaluation normalises
    # with: "clean" = the main task's clean batch only (each task's view is normalised by its own
    # batch statistics and leaves them alone); "every_view" = every task's view too, so they
    # mostly describe rotated/grey/blurred views the test never shows (auxtune <= 0.1)
    running_stats: Literal["clean", "every_view"] = "clean"
    # rotation: one random quarter-turn per image (a view the size of the batch), or all four
    # quarter-turns of every image (a 4x larger view: the seed paper's code)
    rotation_all_four: bool = False
    # a constant factor on a task's loss, by task (1 for tasks not listed): the seed paper's code
    # multiplies the MSE of reconstruction, blur_reconstruction and inpainting by 30, and sums
    # colorization's a and b cross-entropies where auxtune averages them (a factor 2)
    loss_scales: dict[str, float] = field(default_factory=dict)
    # decoder heads: "auxtune", or "paper", the seed paper's released code: a Linear+ReLU before
    # the reconstruction, blur_reconstruction and inpainting decoders, no bias on their last
    # layer, a two-layer inpainting decoder, and inpainting's hole filled white (auxtune: black)
    decoders: Literal["auxtune", "paper"] = "auxtune"

    def __post_init__(self) -> None:
        valid = task_names()
        for name in self.names:
            check(
                name in valid,
                f"tasks.names: unknown task {name!r}; valid tasks: {', '.join(valid)}",
            )
        check(len(set(self.names)) == len(self.names), f"tasks.names has duplicates: {self.names}")
        check(self.blur_sigma > 0, f"tasks.blur_sigma = {self.blur_sigma} must be > 0 (pixels)")
        check(self.decoder_width >= 4, f"tasks.decoder_width = {self.decoder_width} must be >= 4")
        check(
            self.running_stats in ("clean", "every_view"),
            f"tasks.running_stats = {self.running_stats!r}; choose clean or every_view",
        )
        for task, scale in self.loss_scales.items():
            check(
                task in valid,
                f"tasks.loss_scales: unknown task {task!r}; valid tasks: {', '.join(valid)}",
            )
            check(scale > 0, f"tasks.loss_scales.{task} = {scale} must be > 0")
        check(
            self.decoders in ("auxtune", "paper"),
            f"tasks.decoders = {self.decoders!r}; choose auxtune or paper",
        )

    def loss_scale(self, task: str) -> float:
        """The constant factor on ``task``'s loss (``loss_scales``, default 1)."""
        return float(self.loss_scales.get(task, 1.0))
