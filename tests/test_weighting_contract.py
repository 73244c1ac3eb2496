"""The contract every registered weighting keeps (parametrised over the registry: a new plugin is
tested by adding it, with its default options unless ``CONTRACT_OPTIONS`` says otherwise).

- a resumed run (checkpoint after two of three epochs) reproduces the lambdas bit for bit;
- every parameter gets a finite gradient, and it is the gradient of L_main + sum_i lambda_i L_i
  for the lambdas the weighting reports;
- the lambdas stay within the weighting's bounds and are reported as ``lambda/<task>``;
- with few labels (unlabelled images at -1) it trains, and no unlabelled image reaches the main
  loss while the tasks still see them;
- an unknown name, or a second class under a taken name, is refused with the valid names.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch

from auxtune.config import ConfigError, from_dict, to_dict
from auxtune.robust.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
    WeightingConfig,
)
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.trainer import Trainer
from auxtune.robust.training import replayable
from auxtune.robust.weighting import (
    WEIGHTINGS,
    StepContext,
    create_weighting,
    register_weighting,
    weighted_sum,
)
from auxtune.robust.weighting.fixed import FixedWeighting
from weighting_support import TinyMetaSource

TASKS = ("rotation", "reconstruction")
NUM_CLASSES = 10
#: options that make a weighting's lambdas move within the three tiny epochs below
CONTRACT_OPTIONS: dict[str, dict[str, Any]] = {
    "meta": {"warmup_epochs": 1, "meta_lr": 10.0, "lookahead": "nesterov"},
    "auto_lambda": {"meta_lr": 0.05},
    "schedule": {"per_epoch": [{"rotation": 0.2}, {"rotation": 0.9, "reconstruction": 0.1}]},
}
NAMES = list(WEIGHTINGS)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def weighting_config(name: str) -> WeightingConfig:
    return WeightingConfig.create(name, **CONTRACT_OPTIONS.get(name, {}))


def trainer(name: str, labels: np.ndarray | None = None, augment: bool = True) -> Trainer:
    cfg = TrainConfig(
        data=DataConfig(augment=augment),
        model=ModelConfig(depth=10, widen_factor=1, base_width=4),
        optim=OptimConfig(batch_size=8, epochs=3, lr=0.05),
        tasks=TasksConfig(names=TASKS, decoder_width=8),
        weighting=weighting_config(name),
        runtime=RuntimeConfig(device="cpu"),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    drawn = rng.integers(0, NUM_CLASSES, 16)
    labels = drawn if labels is None else labels
    return Trainer(cfg, images, labels, NUM_CLASSES, meta_source=TinyMetaSource())


def run(t: Trainer, epochs: int) -> list[dict[str, Any]]:
    """Every step's reported metrics (floats) over ``epochs`` epochs."""
    steps: list[dict[str, Any]] = []
    for _ in range(epochs):
        t.train_epoch(on_step=lambda m: steps.append({k: float(v) for k, v in m.items()}))
    return steps


def same_state(a: Any, b: Any) -> bool:
    """Equal nested plain data and tensors, bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, Mapping):
        return (
            isinstance(b, Mapping)
            and a.keys() == b.keys()
            and all(same_state(a[k], b[k]) for k in a)
        )
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("name", NAMES)
def test_a_resumed_run_reproduces_the_lambdas_bit_for_bit(name: str) -> None:
    straight = trainer(name)
    steps = run(straight, 3)
    lambdas = [{k: v for k, v in m.items() if k.startswith("lambda/")} for m in steps]
    if straight.weighting.lambdas_change:  # else the resume below would prove nothing
        assert len({tuple(ls.values()) for ls in lambdas}) > 1, "lambdas never moved"

    first = trainer(name)
    run(first, 2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # checkpoints are loaded with weights_only=True
    buffer.seek(0)
    resumed = trainer(name)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    tail = run(resumed, 1)
    assert tail == steps[len(steps) - len(tail) :]  # every loss, lambda and weighting metric
    assert same_state(resumed.weighting.state_dict(), straight.weighting.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_lambdas_stay_in_bounds_and_are_named_after_the_tasks(name: str) -> None:
    t = trainer(name)
    low, high = t.weighting.lambda_bounds()
    for metrics in run(t, 3):
        reported = {
            k.removeprefix("lambda/"): v for k, v in metrics.items() if k.startswith("lambda/")
        }
        assert set(reported) == set(TASKS)
        for task, value in reported.items():
            assert low <= value <= high, (task, value, (low, high))
        assert all(np.isfinite(v) for v in metrics.values())


@pytest.mark.parametrize("name", NAMES)
def test_the_step_is_the_gradient_of_the_reported_weighted_loss(name: str) -> None:
    """Every parameter gets a finite gradient: that of L_main + sum_i lambda_i L_i (reported)."""
    torch.manual_seed(0)
    model = MultiHeadNet(
        ModelConfig(depth=10, widen_factor=1, base_width=4),
        TasksConfig(names=TASKS, decoder_width=8),
        NUM_CLASSES,
    ).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    weighting = create_weighting(weighting_config(name), TASKS)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, 32, 32, generator=generator)
    labels = torch.randint(NUM_CLASSES, (8,), generator=generator)
    meta = (torch.rand(4, 3, 32, 32, generator=generator), labels[:4])
    losses_again = replayable(model, images, labels, None)
    epoch = 2  # past every warm-up
    ctx = StepContext(model, optimizer, epoch, 0, lambda: meta, None, losses_again)
    metrics = weighting.backward(losses_again(), ctx)
    got = {n: p.grad for n, p in model.named_parameters()}
    for n, grad in got.items():
        assert grad is not None and torch.isfinite(grad).all(), n
    assert any(bool(g.abs().sum() > 0) for n, g in got.items() if n.startswith("tasks."))

    lambdas = {t: metrics[f"lambda/{t}"] for t in TASKS}
    model.zero_grad(set_to_none=True)
    weighted_sum(losses_again(), lambdas).backward()
    for n, p in model.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(got[n], p.grad, rtol=1e-4, atol=1e-7, msg=n)


@pytest.mark.parametrize("name", NAMES)
def test_with_few_labels_no_unlabelled_image_reaches_the_main_loss(name: str) -> None:
    labels = np.full(16, -1)
    labels[[1, 4, 6, 9, 11, 12, 13, 15]] = np.arange(8) % NUM_CLASSES  # one batch of 8 labelled
    t = trainer(name, labels, augment=False)  # the inputs are then the images themselves
    unlabelled = {bytes(t.images[i].flatten().tolist()) for i in np.flatnonzero(labels < 0)}
    main_inputs, task_inputs = _record_inputs(t)
    steps = run(t, 3)
    assert all(np.isfinite(s["loss/main"]) for s in steps)
    assert main_inputs and not (main_inputs & unlabelled)  # meta batches pass here too
    assert task_inputs >= unlabelled  # the tasks train on every image


def _record_inputs(t: Trainer) -> tuple[set[bytes], set[bytes]]:
    """The images reaching the main head (every call of the model) and the tasks' views."""
    main: set[bytes] = set()
    views: set[bytes] = set()

    def as_bytes(x: torch.Tensor) -> list[bytes]:
        pixels = (x.detach() * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
        return [bytes(row.flatten().tolist()) for row in pixels]

    t.model.register_forward_pre_hook(lambda module, args: main.update(as_bytes(args[0])))
    for task in t.model.tasks.values():
        make_inputs = task.make_inputs

        def recorded(images: torch.Tensor, make_inputs: Any = make_inputs) -> Any:
            views.update(as_bytes(images))
            return make_inputs(images)

        task.make_inputs = recorded
    return main, views


@pytest.mark.parametrize("name", NAMES)
def test_the_config_section_round_trips_through_plain_data(name: str) -> None:
    cfg = TrainConfig(tasks=TasksConfig(names=TASKS), weighting=weighting_config(name))
    plain = to_dict(cfg)
    assert from_dict(TrainConfig, plain) == cfg
    cls = WEIGHTINGS[name]
    assert (name in plain["weighting"]) == (cls.config_class is not None)


def test_an_unknown_weighting_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        WeightingConfig(name="magic")
    assert "'magic'" in str(err.value) and ", ".join(WEIGHTINGS) in str(err.value)
    with pytest.raises(ConfigError, match=r"unknown config key weighting\.magic; valid keys"):
        from_dict(WeightingConfig, {"magic": {"rate": 1}})


def test_a_taken_name_is_refused() -> None:
    class Another(FixedWeighting):
        name = "fixed"

    with pytest.raises(ValueError, match="'fixed' is already registered by auxtune"):
        register_weighting(Another)
    assert WEIGHTINGS["fixed"] is FixedWeighting
