"""The no-auxiliary control: training with no task at all, its equivalence with all lambdas at 0,
and the demo preset's baseline learning the embedded data (with a robustness gap left to close)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from auxtune.robust.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
    WeightingConfig,
)
from auxtune.robust.trainer import Trainer

TINY = ModelConfig(depth=10, widen_factor=1, base_width=4)


class ZeroMetaBatches:
    def batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64)


def config(tasks: tuple[str, ...], weighting: WeightingConfig) -> TrainConfig:
    return TrainConfig(
        data=DataConfig(augment=False),  # crops draw from the RNG the task views draw from too
        model=TINY,
        optim=OptimConfig(batch_size=8, epochs=2),
        tasks=TasksConfig(names=tasks, decoder_width=8),
        weighting=weighting,
        runtime=RuntimeConfig(device="cpu"),
    )


def data(num: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (num, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, num)


@pytest.mark.parametrize("weighting", ["fixed", "meta"])
def test_an_empty_task_list_trains_the_main_task_alone(weighting):
    cfg = config((), WeightingConfig(name=weighting, sections={"meta": {"warmup_epochs": 0}}))
    trainer = Trainer(cfg, *data(), num_classes=10, meta_source=ZeroMetaBatches())
    before = [p.detach().clone() for p in trainer.model.parameters()]
    metrics = trainer.train_epoch()
    assert "loss/main" in metrics and not any(k.startswith("lambda/") for k in metrics)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_zero_lambdas_train_exactly_like_no_auxiliary_task():
    """With running statistics from the clean batch, lambda = 0 heads change nothing the test
    sees, and their forward passes are skipped (Weighting.active_tasks): a fixed grid's point
    at 0 costs what the no-task control costs (about 3x less than with two heads)."""
    states = []
    for tasks in ((), ("rotation", "blur_reconstruction")):
        cfg = config(tasks, WeightingConfig(lambdas=dict.fromkeys(tasks, 0.0)))
        trainer = Trainer(cfg, *data(), num_classes=10)
        for _ in range(cfg.optim.epochs):
            trainer.train_epoch()
        shared = {**trainer.model.backbone.state_dict(), **trainer.model.classifier.state_dict()}
        states.append(shared)
    without, with_zero_heads = states
    assert without.keys() == with_zero_heads.keys()
    assert all(torch.equal(without[k], with_zero_heads[k]) for k in without)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable")  # memory-mapped set
def test_the_demo_baseline_learns_and_leaves_a_robustness_gap(tmp_path):
    """The demo preset without heads, one seed (~10 CPU-seconds): measured 92.8 +- 1.8 % clean
    test accuracy and 76 +- 4 % on the 15 corruptions over 6 seeds (benchmarks/learning.py)."""
    from auxtune.data.datasets import load_corrupted_test, load_dataset
    from auxtune.data.evaluation import evaluate_in_memory
    from auxtune.platform.config import load_experiment
    from auxtune.trainables.data import materialize

    exp = load_experiment("configs/demo.yaml", ["tasks.names=[]", f"data.data_dir={tmp_path}"])
    cfg = exp.train_config()
    cfg = replace(cfg, data=replace(cfg.data, num_test=300, c_images_per_block=20))
    splits = load_dataset(cfg.data)
    trainer = Trainer(cfg, splits.train.images, splits.train.labels, splits.num_classes)
    for _ in range(cfg.optim.epochs):
        trainer.train_epoch()
    clean = trainer.evaluate(splits.test.images, splits.test.labels)
    blocks = materialize(load_corrupted_test(cfg.data, splits))
    c15 = evaluate_in_memory(trainer.model, blocks, trainer.device).mean_15
    assert clean >= 0.85
    assert c15 is not None and c15 <= clean - 0.05
