"""Each weighting against its paper's formula, on small cases checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from auxtune.config import ConfigError
from auxtune.robust.config import ModelConfig, TasksConfig, TrainConfig, WeightingConfig
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.training import replayable
from auxtune.robust.weighting import MAIN, StepContext, create_weighting
from auxtune.robust.weighting.aggregation import effective_lambdas
from auxtune.robust.weighting.auto_lambda import finite_difference, perturbed_losses
from auxtune.robust.weighting.dwa import dwa_factors
from auxtune.robust.weighting.gradnorm import gradnorm_step
from auxtune.robust.weighting.meta import meta_gradient
from auxtune.robust.weighting.uncertainty import uncertainty_objective

NUM_CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def combine(name: str, rows: list[list[float]], **options: float) -> dict[str, float]:
    """An aggregating weighting's lambdas for gradient rows (main first) of tasks a, b, ..."""
    tasks = ("rotation", "jigsaw", "inpainting")[: len(rows) - 1]
    weighting = create_weighting(WeightingConfig.create(name, init_lambda=1.0, **options), tasks)
    matrix = torch.tensor(rows, dtype=torch.float64)
    return weighting.combine(matrix)  # type: ignore[attr-defined]


def direction(rows: list[list[float]], lambdas: dict[str, float]) -> torch.Tensor:
    g = torch.tensor(rows, dtype=torch.float64)
    return g[0] + sum(value * g[i + 1] for i, value in enumerate(lambdas.values()))


# -- PCGrad, MGDA, UPGrad, CAGrad (TorchJD through the adapter) --------------------------------


def test_pcgrad_removes_the_conflicting_components() -> None:
    """g0 = (1, 0), g1 = (-1, 1) conflict (g0.g1 = -1). PCGrad: g0' = g0 - (g0.g1/|g1|^2) g1 =
    (.5, .5) and g1' = g1 - (g1.g0/|g0|^2) g0 = (0, 1), so d = (.5, 1.5) = 2 g0 + 1.5 g1: the step
    d / 2 = g0 + 0.75 g1, lambda = 0.75."""
    rows = [[1.0, 0.0], [-1.0, 1.0]]
    lambdas = combine("pcgrad", rows)
    assert lambdas == {"rotation": pytest.approx(0.75)}
    g0, g1 = torch.tensor(rows[0]), torch.tensor(rows[1])
    assert torch.allclose(g0 - (g0 @ g1) / (g1 @ g1) * g1, torch.tensor([0.5, 0.5]))  # g0'.g1 = 0
    torch.testing.assert_close(direction(rows, lambdas), torch.tensor([0.5, 1.5]).double() / 2)


def test_without_conflicts_pcgrad_and_upgrad_are_the_fixed_weighting() -> None:
    rows = [[1.0, 0.0, 0.2], [0.5, 0.3, 0.0], [0.1, 0.0, 2.0]]  # pairwise inner products >= 0
    for name in ("pcgrad", "upgrad"):
        assert combine(name, rows) == pytest.approx({"rotation": 1.0, "jigsaw": 1.0}), name


def test_mgda_takes_the_minimum_norm_point_of_the_convex_hull() -> None:
    """g0 = (2, 0), g1 = (0, 1): |a g0 + (1 - a) g1|^2 = 4a^2 + (1 - a)^2 is least at a = 0.2, so
    w = (0.2, 0.8) and lambda = 0.8 / 0.2 = 4 (with the cap lifted; by default it is 1)."""
    rows = [[2.0, 0.0], [0.0, 1.0]]
    assert combine("mgda", rows, lambda_max=100.0) == {"rotation": pytest.approx(4.0)}
    assert combine("mgda", rows) == {"rotation": 1.0}  # no auxiliary loss outweighs the main one


def test_upgrad_conflicts_with_no_gradient() -> None:
    """UPGrad's direction has a non-negative inner product with every row (random conflicts)."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        rows = rng.normal(size=(4, 6)).tolist()
        d = direction(rows, combine("upgrad", rows))
        assert (torch.tensor(rows, dtype=torch.float64) @ d).min() >= -1e-6


def test_cagrad_with_radius_zero_is_the_mean_gradient() -> None:
    rows = [[1.0, 0.0], [-1.0, 1.0], [0.3, -2.0]]
    assert combine("cagrad", rows, c=0.0) == pytest.approx({"rotation": 1.0, "jigsaw": 1.0})
    # a positive radius moves the step off the mean, towards the worse-served gradients
    assert combine("cagrad", rows, c=0.5) != pytest.approx({"rotation": 1.0, "jigsaw": 1.0})


def test_effective_lambdas_scale_by_the_prior_and_cap() -> None:
    weights = torch.tensor([0.5, 1.0, 2.0])
    assert effective_lambdas(weights, {"a": 0.5, "b": 0.1}, 10.0) == {"a": 1.0, "b": 0.4}
    assert effective_lambdas(weights, {"a": 0.5, "b": 0.1}, 0.5) == {"a": 0.5, "b": 0.4}
    # the main gradient left out entirely: capped, never infinite or NaN
    assert effective_lambdas(torch.tensor([0.0, 1.0, 0.0]), {"a": 1, "b": 1}, 1.0) == {
        "a": 1.0,
        "b": 0.0,
    }


# -- uncertainty ----------------------------------------------------------------------------------


def test_uncertainty_objective_is_exp_minus_s_times_loss_plus_s() -> None:
    """L = L_main + sum_i exp(-s_i) L_i + s_i; dL/ds_i = 1 - exp(-s_i) L_i, zero at s_i = log L_i."""
    losses = {MAIN: torch.tensor(1.0), "a": torch.tensor(2.0), "b": torch.tensor(0.5)}
    s = torch.tensor([math.log(2.0), 0.0], requires_grad=True)
    objective = uncertainty_objective(losses, s, ("a", "b"))
    assert float(objective.detach()) == pytest.approx(1.0 + (1.0 + math.log(2.0)) + (0.5 + 0.0))
    objective.backward()
    torch.testing.assert_close(s.grad, torch.tensor([0.0, 1.0 - 0.5]))


def test_uncertainty_steps_its_log_variances_at_the_learning_rate() -> None:
    model = tiny_model(torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = WeightingConfig.create("uncertainty", lambdas={"rotation": 0.5}, init_lambda=1.0)
    weighting = create_weighting(cfg, TASKS)
    losses = real_losses(model)
    values = {t: float(losses[t].detach()) for t in TASKS}
    s0 = {"rotation": -math.log(0.5), "reconstruction": 0.0}
    metrics = weighting.backward(losses, StepContext(model, optimizer, 0, 0))
    assert metrics == pytest.approx({f"lambda/{t}": math.exp(-s0[t]) for t in TASKS})
    expected = [s0[t] - 0.1 * (1 - math.exp(-s0[t]) * values[t]) for t in TASKS]
    assert weighting.log_vars.tolist() == pytest.approx(expected, rel=1e-5)  # type: ignore[attr-defined]


def test_uncertainty_cap_holds_for_a_vanishing_loss() -> None:
    model = tiny_model(torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=100.0)
    cfg = WeightingConfig.create("uncertainty", lambda_max=3.0)
    weighting = create_weighting(cfg, TASKS)
    for step in range(2):
        losses = real_losses(model)
        losses = {**losses, "reconstruction": losses["reconstruction"] * 1e-6}
        metrics = weighting.backward(losses, StepContext(model, optimizer, 0, step))
    assert metrics["lambda/reconstruction"] == pytest.approx(3.0)


# -- DWA --------------------------------------------------------------------------------------------


def test_dwa_weights_from_two_loss_ratios() -> None:
    """Epoch means a: 4 -> 2, b: 1 -> 1 give w = (0.5, 1); with T = 2, lambda0 = 0.5 and k = 2:
    lambda_a = 0.5 * 2 * e^0.25 / (e^0.25 + e^0.5), lambda_b the rest."""
    weighting = create_weighting(WeightingConfig.create("dwa", temperature=2.0), ("a", "b"))
    model = torch.nn.Linear(1, 1)
    for epoch, (a, b) in enumerate([(4.0, 1.0), (2.0, 1.0), (1.0, 1.0)]):
        for step in range(2):
            x = model.weight.sum()  # something to backward through
            losses = {MAIN: x, "a": x * 0 + a, "b": x * 0 + b}
            metrics = weighting.backward(losses, StepContext(model, None, epoch, step))  # type: ignore[arg-type]
            if epoch < 2:
                assert metrics == {"lambda/a": 0.5, "lambda/b": 0.5}
    share = math.exp(0.25) / (math.exp(0.25) + math.exp(0.5))
    assert metrics == pytest.approx({"lambda/a": share, "lambda/b": 1 - share})
    factors = dwa_factors(torch.tensor([2.0, 1.0]), torch.tensor([4.0, 1.0]), 2.0)
    assert factors.tolist() == pytest.approx([2 * share, 2 * (1 - share)])


# -- GradNorm -------------------------------------------------------------------------------------


def test_gradnorm_target_is_the_mean_norm_times_the_relative_rate_to_the_alpha() -> None:
    """w = (1, .5, 2), n = (1, 2, .5): G = (1, 1, 1), G_bar = 1. Loss ratios (1, 2, 1) have mean
    4/3, so r = (.75, 1.5, .75); with alpha = 1 the target is r itself, and
    dL_grad/dw = sign(G - target) n = (1, -2, .5), L_grad = .25 + .5 + .25."""
    weights = torch.tensor([1.0, 0.5, 2.0])
    norms = torch.tensor([1.0, 2.0, 0.5])
    grad, loss = gradnorm_step(weights, norms, torch.tensor([1.0, 2.0, 1.0]), alpha=1.0)
    assert grad.tolist() == [1.0, -2.0, 0.5] and float(loss) == pytest.approx(1.0)
    # alpha = 0 equalises the weighted norms whatever the rates: target = G_bar
    grad, _ = gradnorm_step(weights, torch.tensor([1.0, 4.0, 0.5]), torch.ones(3), alpha=0.0)
    assert grad.tolist() == [-1.0, 4.0, -0.5]  # G = (1, 2, 1), G_bar = 4/3


def test_gradnorm_keeps_the_main_weight_and_the_auxiliary_sum() -> None:
    model = tiny_model(torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = WeightingConfig.create("gradnorm", lambdas={"rotation": 0.2}, init_lambda=0.6, lr=0.05)
    weighting = create_weighting(cfg, TASKS)
    for step in range(3):
        weighting.backward(real_losses(model, seed=step), StepContext(model, optimizer, 0, step))
    assert sum(weighting.lambdas.values()) == pytest.approx(0.8)
    assert weighting.lambdas != {"rotation": 0.2, "reconstruction": 0.6}


# -- Auto-Lambda ------------------------------------------------------------------------------------


TASKS = ("rotation", "reconstruction")


def tiny_model(dtype: torch.dtype = torch.float64) -> MultiHeadNet:
    torch.manual_seed(0)
    model = MultiHeadNet(
        ModelConfig(depth=10, widen_factor=1, base_width=4),
        TasksConfig(names=TASKS, decoder_width=8),
        NUM_CLASSES,
    )
    return model.to(dtype).train()


def batch(
    n: int, seed: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g, dtype=dtype), torch.randint(
        NUM_CLASSES, (n,), generator=g
    )


def real_losses(model: MultiHeadNet, seed: int = 0) -> dict[str, torch.Tensor]:
    images, labels = batch(8, seed, next(model.parameters()).dtype)
    return replayable(model, images, labels, None)()


def test_auto_lambda_finite_difference_matches_the_exact_hypergradient() -> None:
    """Auto-Lambda's (L_i(psi + eps v) - L_i(psi - eps v)) / 2 eps approximates the dot product
    -alpha <grad L_i, v> that ``meta`` computes exactly (float64, a tiny model). At the paper's
    eps = 0.01 / |v| the gap is ~0.2% (measured: truncation, ReLU kinks); it vanishes as eps
    shrinks, down to the rounding of the losses (rotation's: float64; the reconstruction
    decoder's loss is float32, so its difference quotient is noise at a tiny eps)."""
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = batch(8, 0)
    again = replayable(model, images, labels, None)
    lambdas = {"rotation": 0.3, "reconstruction": 0.8}
    meta = batch(5, 1)
    exact = meta_gradient(model, again(), lambdas, 0.1, meta, optimizer, "sgd").hypergrad
    assert exact.abs().max() > 0

    def gap(radius: float) -> torch.Tensor:
        fd = finite_difference(model, again(), lambdas, 0.1, meta, optimizer, again, radius=radius)
        return (fd.hypergrad - exact).abs() / exact.abs().max()

    assert gap(0.01).max() < 1e-2  # the published eps
    assert gap(1e-5)[0] < 1e-6  # rotation: exact in the limit


def test_finite_difference_leaves_the_model_exactly_as_it_was() -> None:
    model = tiny_model()
    images, labels = batch(8, 0)
    again = replayable(model, images, labels, None)
    unperturbed = torch.stack([again()[t] for t in TASKS])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    direction = [torch.randn_like(p) for p in model.shared_parameters()]
    plus = perturbed_losses(model, direction, 0.01, again, TASKS)
    assert not torch.equal(plus, unperturbed)
    for key, value in model.state_dict().items():  # parameters and BatchNorm statistics
        assert torch.equal(value, before[key]), key


def test_auto_lambda_takes_adam_steps_on_the_hypergradient() -> None:
    """Adam's first step is lr * h / (|h| + eps) (bias-corrected m / sqrt(v)): every lambda moves
    by about meta_lr against its hypergradient's sign."""
    model = tiny_model(torch.float32)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = WeightingConfig.create("auto_lambda", meta_lr=0.01)
    weighting = create_weighting(cfg, TASKS)
    images, labels = batch(8, 0, torch.float32)
    again = replayable(model, images, labels, None)
    meta = batch(4, 1, torch.float32)
    ctx = StepContext(model, optimizer, 0, 0, lambda: meta, None, again)
    metrics = weighting.backward(again(), ctx)
    for task in TASKS:
        h = metrics[f"hypergrad/{task}"]
        step = 0.01 * h / (abs(h) + 1e-8)  # Adam's eps: ~lr * sign(h) unless |h| is tiny
        assert metrics[f"lambda/{task}"] == pytest.approx(0.5 - step, rel=1e-6)
        assert abs(step) > 0.005
    assert "meta/loss" in metrics


# -- schedule -------------------------------------------------------------------------------------


def test_schedule_follows_its_epochs_and_holds_the_last() -> None:
    cfg = WeightingConfig.create(
        "schedule",
        lambdas={"rotation": 0.1},
        per_epoch=[{"reconstruction": 0.7}, {"rotation": 0.9}],
    )
    weighting = create_weighting(cfg, TASKS)
    expected = [(0.1, 0.7), (0.9, 0.7), (0.9, 0.7), (0.9, 0.7)]
    for epoch, (rotation, reconstruction) in enumerate(expected):
        assert weighting.lambdas_at(epoch) == {
            "rotation": rotation,
            "reconstruction": reconstruction,
        }  # type: ignore[attr-defined]


def test_schedule_names_only_trained_tasks() -> None:
    with pytest.raises(ConfigError, match=r"weighting\.schedule\.per_epoch\[1\]\.jigsaw"):
        TrainConfig(
            tasks=TasksConfig(names=TASKS),
            weighting=WeightingConfig.create("schedule", per_epoch=[{}, {"jigsaw": 1.0}]),
        )
    with pytest.raises(ConfigError, match=r"weighting\.schedule\.per_epoch\[0\]\.rotation = -1"):
        WeightingConfig.create("schedule", per_epoch=[{"rotation": -1.0}])
