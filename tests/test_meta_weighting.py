"""The ``meta`` weighting: exact cheap hypergradient, lookahead, warm-up, clamps, schedule, resume."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from auxtune.config import ConfigError
from auxtune.robust.config import (
    ModelConfig,
    OptimConfig,
    RuntimeConfig,
    TasksConfig,
    TrainConfig,
    WeightingConfig,
)
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.trainer import Trainer
from auxtune.robust.training import compute_losses
from auxtune.robust.weighting import MAIN, StepContext, create_weighting, weighted_sum
from auxtune.robust.weighting._reference import meta_hypergradient_reference
from auxtune.robust.weighting.meta import (
    MetaGradientWeighting,
    lookahead_step,
    meta_gradient,
)
from weighting_support import TinyMetaSource

TASKS = ("rotation", "reconstruction")
NUM_CLASSES = 10
ALPHA = 0.1
Batch = tuple[torch.Tensor, torch.Tensor]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(dtype: torch.dtype = torch.float64) -> MultiHeadNet:
    torch.manual_seed(0)
    model = MultiHeadNet(
        ModelConfig(depth=10, widen_factor=1, base_width=4),
        TasksConfig(names=TASKS, decoder_width=8),
        NUM_CLASSES,
    )
    return model.to(dtype).train()


def sgd(model: torch.nn.Module, momentum: float = 0.9, nesterov: bool = True) -> torch.optim.SGD:
    return torch.optim.SGD(
        model.parameters(), lr=ALPHA, momentum=momentum, nesterov=nesterov, weight_decay=5e-4
    )


def batch(n: int, seed: int, dtype: torch.dtype = torch.float64) -> Batch:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 32, 32, generator=g, dtype=dtype)
    return images, torch.randint(NUM_CLASSES, (n,), generator=g)


def losses_fn(model: MultiHeadNet, train: Batch) -> Callable[[], dict[str, torch.Tensor]]:
    """The real multi-head losses, with the same task views on every call."""

    def losses() -> dict[str, torch.Tensor]:
        torch.manual_seed(1)
        return compute_losses(model, *train)

    return losses


def trained(model: MultiHeadNet, optimizer: torch.optim.Optimizer, losses: Callable) -> None:
    """Two real steps: momentum buffers exist and BN statistics have moved."""
    for _ in range(2):
        optimizer.zero_grad()
        weighted_sum(losses(), dict.fromkeys(TASKS, 0.5)).backward()
        optimizer.step()


def context(
    model: MultiHeadNet, optimizer: torch.optim.Optimizer, meta: Batch, **kw
) -> StepContext:
    return StepContext(
        model, optimizer, epoch=kw.pop("epoch", 1), step=0, meta_batch=lambda: meta, **kw
    )


# -- exactness --------------------------------------------------------------------------------


@pytest.mark.parametrize("lookahead", ["sgd", "nesterov"])
def test_cheap_hypergradient_equals_second_order_reference(lookahead: str) -> None:
    model = tiny_model()
    optimizer = sgd(model)
    losses = losses_fn(model, batch(8, 0))
    trained(model, optimizer, losses)
    lambdas = {"rotation": 0.3, "reconstruction": 0.8}
    args = (lambdas, ALPHA, batch(5, 1), optimizer, lookahead)
    cheap = meta_gradient(model, losses(), *args)
    reference, reference_loss = meta_hypergradient_reference(model, losses(), *args)
    assert reference.abs().max() > 0
    error = (cheap.hypergrad - reference).abs().max() / reference.abs().max()
    assert error <= 1e-4, (cheap.hypergrad, reference)
    assert torch.allclose(cheap.meta_loss, reference_loss, rtol=1e-10, atol=0)


def test_nesterov_first_step_without_weight_decay_is_sgd_with_lr_times_one_plus_mu() -> None:
    """No weight decay, no momentum buffer yet: psi' = psi - alpha (1 + mu) g, the same point."""
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=ALPHA, momentum=0.9, nesterov=True)
    losses = losses_fn(model, batch(8, 0))
    lambdas = dict.fromkeys(TASKS, 0.5)
    plain = meta_gradient(model, losses(), lambdas, 1.9 * ALPHA, batch(5, 1), optimizer, "sgd")
    nesterov = meta_gradient(model, losses(), lambdas, ALPHA, batch(5, 1), optimizer, "nesterov")
    torch.testing.assert_close(nesterov.hypergrad, plain.hypergrad, rtol=1e-9, atol=0)


def test_nesterov_lookahead_is_the_optimizers_next_step() -> None:
    model = tiny_model()
    optimizer = sgd(model)
    trained(model, optimizer, losses_fn(model, batch(8, 0)))
    psi = model.shared_parameters()
    g = [torch.randn_like(p) for p in psi]
    predicted, scale = lookahead_step(psi, g, ALPHA, optimizer, "nesterov")
    assert scale == pytest.approx(1.9)
    twin = copy.deepcopy(model)
    twin_optimizer = sgd(twin)
    twin_optimizer.load_state_dict(optimizer.state_dict())
    for p, grad in zip(twin.shared_parameters(), g):
        p.grad = grad.clone()
    twin_optimizer.step()
    for p, q in zip(twin.shared_parameters(), predicted):
        torch.testing.assert_close(q, p.detach(), rtol=1e-12, atol=1e-14)


def test_nesterov_lookahead_refuses_heavy_ball_momentum() -> None:
    model = tiny_model()
    psi = model.shared_parameters()
    with pytest.raises(ValueError, match="nesterov"):
        lookahead_step(psi, psi, ALPHA, sgd(model, nesterov=False), "nesterov")
    with pytest.raises(ConfigError, match="lookahead"):
        WeightingConfig.create("meta", lookahead="adam")
    with pytest.raises(ConfigError, match=r"optim\.nesterov"):
        TrainConfig(
            optim=OptimConfig(nesterov=False),
            weighting=WeightingConfig.create("meta", lookahead="nesterov"),
        )


def test_lookahead_keeps_bn_statistics_and_meta_loss_is_at_psi_prime_in_train_mode() -> None:
    model = tiny_model()
    optimizer = sgd(model)
    losses = losses_fn(model, batch(8, 0))
    trained(model, optimizer, losses)
    lambdas = {"rotation": 0.3, "reconstruction": 0.8}
    meta = batch(5, 1)
    train_losses = losses()  # the forward passes update BN statistics; the meta step must not
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    result = meta_gradient(model, train_losses, lambdas, ALPHA, meta, optimizer, "sgd")
    for name, b in model.named_buffers():
        assert torch.equal(b, buffers[name]), name
    # independent psi': a copy of the model moved by hand, evaluated with BN in train mode
    psi = model.shared_parameters()
    g = torch.autograd.grad(weighted_sum(losses(), lambdas), psi)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p, grad in zip(twin.shared_parameters(), g):
            p.sub_(ALPHA * grad)
    expected = F.cross_entropy(twin(meta[0]), meta[1])
    torch.testing.assert_close(result.meta_loss, expected.detach(), rtol=1e-10, atol=0)


def test_final_gradient_is_the_weighted_sum_with_the_new_lambdas() -> None:
    model = tiny_model()
    optimizer = sgd(model)
    losses = losses_fn(model, batch(8, 0))
    weighting = create_weighting(
        WeightingConfig.create("meta", warmup_epochs=0, meta_lr=50.0), TASKS
    )
    old = dict(weighting.lambdas)
    weighting.backward(losses(), context(model, optimizer, batch(5, 1)))
    assert weighting.lambdas != old
    got = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    weighted_sum(losses(), weighting.lambdas).backward()
    for name, p in model.named_parameters():  # rtol: the losses' float32 casts see lambda or not
        torch.testing.assert_close(got[name], p.grad, rtol=1e-5, atol=1e-10, msg=name)


# -- the weighting's schedule -------------------------------------------------------------------


class CountingMeta:
    def __init__(self, meta: Batch) -> None:
        self.meta, self.calls = meta, 0

    def __call__(self) -> Batch:
        self.calls += 1
        return self.meta


def test_warmup_behaves_as_fixed_and_draws_no_meta_batch() -> None:
    model = tiny_model()
    optimizer = sgd(model)
    losses = losses_fn(model, batch(8, 0))
    meta = CountingMeta(batch(5, 1))
    cfg = WeightingConfig.create("meta", warmup_epochs=2, init_lambda=0.4)
    weighting = create_weighting(cfg, TASKS)
    assert isinstance(weighting, MetaGradientWeighting)
    for epoch in (0, 1):
        model.zero_grad(set_to_none=True)
        metrics = weighting.backward(losses(), StepContext(model, optimizer, epoch, 0, meta))
        assert metrics == {"lambda/rotation": 0.4, "lambda/reconstruction": 0.4}
    assert meta.calls == 0
    fixed_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    create_weighting(WeightingConfig(init_lambda=0.4), TASKS).backward(
        losses(), context(model, optimizer, meta.meta)
    )
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, fixed_grads[name]), name
    metrics = weighting.backward(losses(), StepContext(model, optimizer, 2, 0, meta))
    assert meta.calls == 1
    assert weighting.lambdas != {"rotation": 0.4, "reconstruction": 0.4}
    assert set(metrics) == {
        "lambda/rotation",
        "lambda/reconstruction",
        "hypergrad/rotation",
        "hypergrad/reconstruction",
        "meta/loss",
    }


def test_update_every_m_steps() -> None:
    model = tiny_model()
    optimizer = sgd(model)
    losses = losses_fn(model, batch(8, 0))
    meta = CountingMeta(batch(5, 1))
    cfg = WeightingConfig.create("meta", warmup_epochs=0, update_every=3, meta_lr=10.0)
    weighting = create_weighting(cfg, TASKS)
    history, reported = [], []
    for step in range(7):
        metrics = weighting.backward(losses(), StepContext(model, optimizer, 0, step, meta))
        history.append(dict(weighting.lambdas))
        reported.append(metrics["hypergrad/rotation"])
    assert meta.calls == 3  # steps 0, 3 and 6
    assert history[0] == history[1] == history[2] != history[3] == history[4] == history[5]
    assert history[6] != history[5]
    assert reported[0] == reported[1] == reported[2] and reported[3] == reported[5]


def test_missing_meta_source_is_a_clear_error() -> None:
    model = tiny_model()
    weighting = create_weighting(WeightingConfig(name="meta"), TASKS)
    ctx = StepContext(model, sgd(model), epoch=0, step=0)
    with pytest.raises(ValueError, match="meta_source"):
        weighting.backward(losses_fn(model, batch(8, 0))(), ctx)


# -- direction and clamps on a toy problem --------------------------------------------------------


def toy_losses(model: MultiHeadNet, train: Batch, meta: Batch) -> dict[str, torch.Tensor]:
    """``rotation`` is the meta objective itself (helpful), ``reconstruction`` its negative (harmful)."""

    def heads(task: str) -> torch.Tensor:  # keep the heads in the graph (zero gradient)
        return 0 * sum(p.sum() for p in model.task(task).parameters())

    def meta_loss() -> torch.Tensor:  # one forward per loss: the graphs must be disjoint
        return F.cross_entropy(model(meta[0]), meta[1])

    return {
        MAIN: F.cross_entropy(model(train[0]), train[1]),
        "rotation": meta_loss() + heads("rotation"),
        "reconstruction": -meta_loss() + heads("reconstruction"),
    }


def run_toy(cfg: WeightingConfig, steps: int) -> tuple[MetaGradientWeighting, list[dict]]:
    model = tiny_model(torch.float32)
    optimizer = sgd(model)
    weighting = create_weighting(cfg, TASKS)
    assert isinstance(weighting, MetaGradientWeighting)
    train, meta = batch(8, 0, torch.float32), batch(8, 1, torch.float32)
    history = []
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        ctx = StepContext(model, optimizer, 0, step, lambda: meta)
        history.append(weighting.backward(toy_losses(model, train, meta), ctx))
        optimizer.step()
    return weighting, history


def test_lambdas_move_toward_the_helpful_task() -> None:
    cfg = WeightingConfig.create("meta", warmup_epochs=0, meta_lr=1.0, init_lambda=0.5)
    weighting, history = run_toy(cfg, steps=3)
    assert all(np.isfinite(list(m.values())).all() for m in history)
    assert all(m["hypergrad/rotation"] < 0 < m["hypergrad/reconstruction"] for m in history)
    assert weighting.lambdas["rotation"] > 0.5 > weighting.lambdas["reconstruction"]


def test_lambdas_are_clamped_to_zero_and_lambda_max() -> None:
    cfg = WeightingConfig.create("meta", warmup_epochs=0, meta_lr=1e6, lambda_max=0.75)
    weighting, history = run_toy(cfg, steps=2)
    assert weighting.lambdas == {"rotation": 0.75, "reconstruction": 0.0}
    assert all(0.0 <= m[f"lambda/{t}"] <= 0.75 for m in history for t in TASKS)


# -- the trainer: a resumed run continues exactly -------------------------------------------------


def meta_trainer() -> Trainer:
    cfg = TrainConfig(
        model=ModelConfig(depth=10, widen_factor=1, base_width=4),
        optim=OptimConfig(batch_size=8, epochs=3, lr=0.05),
        tasks=TasksConfig(names=TASKS, decoder_width=8),
        weighting=WeightingConfig.create(
            "meta", warmup_epochs=1, meta_lr=10.0, lookahead="nesterov"
        ),
        runtime=RuntimeConfig(device="cpu"),
    )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    return Trainer(
        cfg, images, rng.integers(0, NUM_CLASSES, 24), NUM_CLASSES, meta_source=TinyMetaSource()
    )


def test_resumed_run_reproduces_the_lambdas_exactly() -> None:
    straight = meta_trainer()
    epochs = [straight.train_epoch() for _ in range(3)]
    assert "hypergrad/rotation" not in epochs[0]  # warm-up epoch: fixed lambdas
    assert epochs[0]["lambda/rotation"] == 0.5
    for key in ("hypergrad/rotation", "hypergrad/reconstruction", "meta/loss"):
        assert np.isfinite(epochs[2][key]), key
    assert epochs[2]["lambda/rotation"] != 0.5

    first = meta_trainer()
    first.train_epoch()
    first.train_epoch()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)  # checkpoints are loaded with weights_only=True
    buffer.seek(0)
    resumed = meta_trainer()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    last = resumed.train_epoch()
    for key, value in epochs[2].items():
        if key.startswith(("lambda/", "hypergrad/", "meta/", "loss/")):
            assert last[key] == value, key
    assert resumed.weighting.state_dict() == straight.weighting.state_dict()
