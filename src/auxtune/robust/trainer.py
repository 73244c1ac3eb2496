"""The trainer: holds the model, optimizer, schedule and weighting, runs epochs and evaluates.

It knows nothing of Ray, MLflow or the CLI: callers drive it epoch by epoch, read the metrics it
returns and save ``state_dict()``; a trainer loaded from that state continues bit-for-bit.

    >>> import numpy as np
    >>> from auxtune.robust.config import TrainConfig, ModelConfig, OptimConfig
    >>> cfg = TrainConfig(model=ModelConfig(depth=10, widen_factor=1, base_width=4),
    ...                   optim=OptimConfig(batch_size=8, epochs=1), runtime=RuntimeConfig(device="cpu"))
    >>> images = np.zeros((16, 32, 32, 3), np.uint8); labels = np.zeros(16, np.int64)
    >>> trainer = Trainer(cfg, images, labels, num_classes=10)
    >>> sorted(trainer.train_epoch())[:3]
    ['epoch', 'images_per_s', 'lambda/rotation']
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import torch

from auxtune.config import ConfigError
from auxtune.robust.adversarial import Adversary
from auxtune.robust.config import RuntimeConfig, TrainConfig
from auxtune.robust.data_utils import (
    LabelledBatches,
    as_tensor,
    epoch_batches,
    random_crop_flip,
    steps_per_epoch,
    to_model_input,
)
from auxtune.robust.device import (
    autocast_factory,
    memory_format,
    resolve_device,
    usable_threads,
)
from auxtune.robust.gold_loss import gold_corrected_loss
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.training import MainLoss, cross_entropy, train_step
from auxtune.robust.weighting import StepContext, create_weighting

__all__ = ["DivergenceError", "MetaBatchSource", "RuntimeConfig", "Trainer"]


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite."""


class MetaBatchSource(Protocol):
    """Meta-validation batches by step index (deterministic, so resumed runs draw the same ones)."""

    def batch(self, index: int) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]: ...


class Trainer:
    """Train ``MultiHeadNet`` on uint8 (N, 32, 32, 3) images with the configured weighting.

    With a ``corruption_matrix`` (Gold Loss Correction's C_hat) the main loss is corrected on the
    images that ``trusted`` does not mark (:mod:`auxtune.robust.gold_loss`). Images labelled
    ``UNLABELED`` (-1) train the auxiliary tasks only: the main loss draws its batches from the
    labelled ones (:class:`~auxtune.robust.data_utils.LabelledBatches`).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        images: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        num_classes: int,
        *,
        meta_source: MetaBatchSource | None = None,
        device: torch.device | str | None = None,
        trusted: np.ndarray | torch.Tensor | None = None,
        corruption_matrix: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device) if device else resolve_device(cfg.runtime.device)
        if cfg.runtime.threads:
            torch.set_num_threads(usable_threads(cfg.runtime.threads))
        torch.manual_seed(cfg.seed)
        self.images = as_tensor(images, self.device)
        self.labels = as_tensor(labels, self.device).long()
        self.trusted = torch.zeros_like(self.labels, dtype=torch.bool)
        if trusted is not None:
            self.trusted = as_tensor(trusted, self.device).bool()
            if self.trusted.shape != self.labels.shape:
                raise ValueError(
                    f"trusted marks {len(self.trusted)} images, but {len(self.labels)} are given"
                )
        self.corruption_matrix: torch.Tensor | None = None
        if corruption_matrix is not None:
            self.corruption_matrix = as_tensor(corruption_matrix, self.device).float()
        self.meta_source = meta_source
        self.num_classes = num_classes
        self.memory_format = memory_format(cfg.runtime)
        self.autocast = autocast_factory(self.device, cfg.runtime)
        self.model = MultiHeadNet(cfg.model, cfg.tasks, num_classes)
        self.model.to(self.device).to(memory_format=self.memory_format)
        if cfg.runtime.compile:
            self.model.backbone.compile()
        self.steps_per_epoch = steps_per_epoch(len(self.images), cfg.optim.batch_size)
        if self.steps_per_epoch == 0:  # a config that does not fit the data: a user error
            raise ConfigError(
                f"{len(self.images)} training images make no batch of optim.batch_size="
                f"{cfg.optim.batch_size}; lower the batch size or use more data"
            )
        self.optimizer = torch.optim.SGD(
            self.model.parameters(),
            lr=cfg.optim.lr,
            momentum=cfg.optim.momentum,
            nesterov=cfg.optim.nesterov and cfg.optim.momentum > 0,
            weight_decay=cfg.optim.weight_decay,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=cfg.optim.epochs * self.steps_per_epoch, eta_min=cfg.optim.min_lr
        )
        self.weighting = create_weighting(cfg.weighting, cfg.tasks.names)
        if self.weighting.needs_meta_batch and meta_source is None:
            raise ValueError(
                f"weighting.name={cfg.weighting.name} learns from meta-validation batches: give "
                "the Trainer a meta_source (auxtune.data.meta_validation.meta_validation_source)"
            )
        self.adversary = Adversary.from_config(cfg.adversarial)  # None unless adversarial.train
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        self.labelled = self._labelled_batches()
        self.epoch = 0  # epochs completed
        self.step = 0  # steps completed

    # -- training ---------------------------------------------------------------------------

    def train_epoch(
        self, on_step: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, float]:
        """Run one epoch; return epoch means of the losses, the final lambdas and throughput."""
        self.model.train()
        sums: dict[str, Any] = {}
        last: dict[str, Any] = {}
        start = time.perf_counter()
        for index in epoch_batches(len(self.images), self.cfg.optim.batch_size, self.shuffle):
            index = index.to(self.device)
            main = index if self.labelled is None else self.labelled.batch(self.step)
            metrics = self._step(index, main)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
                last[key] = value
            if on_step is not None:
                on_step(metrics)
        seconds = time.perf_counter() - start
        result = self._epoch_metrics(sums, last, seconds)
        self.epoch += 1
        return result

    def _labelled_batches(self) -> LabelledBatches | None:
        batches = LabelledBatches.of(self.labels, self.cfg.optim.batch_size, self.cfg.seed)
        if batches is not None and batches.per_cycle == 0:
            raise ConfigError(
                f"{len(batches.labelled)} of the {len(self.labels)} training images are labelled, "
                f"fewer than one batch (optim.batch_size = {self.cfg.optim.batch_size}); raise "
                "data.labeled_fraction or lower optim.batch_size"
            )
        return batches

    def _step(self, index: torch.Tensor, main: torch.Tensor) -> dict[str, Any]:
        """One update: the tasks see the images of ``index``, the main loss those of ``main``
        (the same batch unless only some images are labelled; then a run without active tasks,
        the baseline, prepares no task batch)."""
        x = self._input(main)
        task_x = None
        if main is not index and self.weighting.active_tasks():
            task_x = self._input(index)
        labels, trusted = self.labels[main], self.trusted[main]
        ctx = StepContext(
            self.model,
            self.optimizer,
            epoch=self.epoch,
            step=self.step,
            meta_batch=self._meta_batch_getter(self.step),
            autocast=self.autocast,
        )
        main_loss = self._main_loss(trusted)
        adversary = self._adversary()
        metrics = train_step(
            self.model,
            self.optimizer,
            self.weighting,
            x,
            labels,
            ctx,
            adversary=adversary,
            main_loss=main_loss,
            task_images=task_x,
        )
        if adversary is not None:
            metrics["adv/train_epsilon"] = adversary.pgd.epsilon
        self.scheduler.step()
        self.step += 1
        return metrics

    def _input(self, index: torch.Tensor) -> torch.Tensor:
        """The images of ``index`` as model input, augmented when ``data.augment``."""
        x = to_model_input(self.images[index])
        if self.cfg.data.augment:
            x = random_crop_flip(x)
        return x.contiguous(memory_format=self.memory_format)

    def _adversary(self) -> Adversary | None:
        """The training attack of this step: its radius grows over ``adversarial.warmup_epochs``."""
        warmup_steps = self.cfg.adversarial.warmup_epochs * self.steps_per_epoch
        if self.adversary is None or self.step >= warmup_steps:
            return self.adversary
        return self.adversary.scaled((self.step + 1) / warmup_steps)

    def _main_loss(self, trusted: torch.Tensor) -> MainLoss:
        if self.corruption_matrix is None:
            return cross_entropy
        return functools.partial(
            gold_corrected_loss, trusted=trusted, matrix=self.corruption_matrix
        )

    def _meta_batch_getter(
        self, step: int
    ) -> Callable[[], tuple[torch.Tensor, torch.Tensor]] | None:
        source = self.meta_source
        if source is None or not self.weighting.needs_meta_batch:
            return None

        def get() -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = source.batch(step)
            x = to_model_input(as_tensor(images, self.device))
            y = as_tensor(labels, self.device).long()
            return x.contiguous(memory_format=self.memory_format), y

        return get

    def _epoch_metrics(
        self, sums: Mapping[str, Any], last: Mapping[str, Any], seconds: float
    ) -> dict[str, float]:
        steps = max(self.steps_per_epoch, 1)
        # lambdas are state: report where they ended; everything else is an epoch mean
        result = {k: float(last[k] if k.startswith("lambda/") else sums[k] / steps) for k in sums}
        main = result.get("loss/main", 0.0)
        if not math.isfinite(main):
            raise DivergenceError(
                f"training diverged in epoch {self.epoch + 1}: main loss is {main}; "
                f"lower optim.lr (now {self.cfg.optim.lr}) or the lambdas"
            )
        images = steps * self.cfg.optim.batch_size
        result.update(
            {
                "epoch": float(self.epoch + 1),
                "lr": float(self.scheduler.get_last_lr()[0]),
                "time/epoch_s": seconds,
                "images_per_s": images / max(seconds, 1e-9),
            }
        )
        return result

    # -- evaluation -------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Predicted classes of uint8 (N, 32, 32, 3) images (eval mode, batched)."""
        return predict(
            self.model, images, self.device, batch_size, self.autocast, self.memory_format
        )

    def evaluate(
        self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor
    ) -> float:
        """Clean accuracy in [0, 1]."""
        predicted = self.predict(images)
        return float((predicted == as_tensor(labels, predicted.device).long()).float().mean())

    # -- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit-for-bit (tensors and plain data only)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        state = {
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "weighting": self.weighting.state_dict(),
            "rng": rng,
        }
        if self.corruption_matrix is not None:  # GLC's C_hat: a resume must not re-estimate it
            state["corruption_matrix"] = self.corruption_matrix
        return state

    def load_state_dict(self, state: Mapping[str, Any], *, weighting: bool = True) -> None:
        """Restore ``state``; ``weighting=False`` keeps this trainer's lambdas (a PBT exploit)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if weighting:
            self.weighting.load_state_dict(state["weighting"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        if "corruption_matrix" in state:
            self.corruption_matrix = state["corruption_matrix"].to(self.device)
        torch.set_rng_state(state["rng"]["torch"])
        self.shuffle.set_state(state["rng"]["shuffle"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    images: np.ndarray | torch.Tensor,
    device: torch.device,
    batch_size: int = 500,
    autocast: Callable[[], Any] | None = None,
    fmt: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """Predicted classes of uint8 (N, 32, 32, 3) images with ``model`` in eval mode."""
    was_training = model.training
    model.eval()
    outputs = []
    for start in range(0, len(images), batch_size):
        x = to_model_input(as_tensor(images[start : start + batch_size], device))
        with autocast() if autocast else torch.no_grad():
            outputs.append(model(x.contiguous(memory_format=fmt)).argmax(1))
    model.train(was_training)
    return torch.cat(outputs) if outputs else torch.empty(0, dtype=torch.long, device=device)
