"""Adversarial training: PGD's geometry, the attack's views and losses, BatchNorm left alone, every
weighting (the meta-gradient included) and the config's one-line errors."""

from __future__ import annotations

import dataclasses
import doctest
import re

import numpy as np
import pytest
import torch

from auxtune.config import ConfigError, apply_overrides, from_dict
from auxtune.platform.cli import main
from auxtune.robust import adversarial
from auxtune.robust.adversarial import (
    PGD,
    Adversary,
    main_loss,
    replayable_randomness,
)
from auxtune.robust.batchnorm import frozen_running_stats
from auxtune.robust.config import (
    AdversarialConfig,
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
from auxtune.robust.training import compute_losses, train_step
from auxtune.robust.weighting import StepContext, create_weighting
from auxtune.robust.weighting.meta import meta_gradient

TINY = ModelConfig(depth=10, widen_factor=1, base_width=4)
EPS = 8 / 255


def model_with(tasks: tuple[str, ...] = ("rotation",), seed: int = 0) -> MultiHeadNet:
    torch.manual_seed(seed)
    return MultiHeadNet(TINY, TasksConfig(names=tasks, decoder_width=8), num_classes=10).train()


def batch(n: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(10, (n,), generator=g)


def bn_buffers(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: b.clone()
        for name, b in model.named_buffers()
        if "running" in name or "num_batches" in name
    }


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_doctests_pass():
    results = doctest.testmod(adversarial)
    assert results.attempted > 0 and results.failed == 0


# ---------------------------------------------------------------------------------- PGD


@pytest.mark.parametrize("threat_model", ["linf", "l2"])
def test_every_iterate_stays_in_the_ball_and_the_image_range(threat_model):
    eps = EPS if threat_model == "linf" else 0.5
    pgd = PGD(threat_model, eps, step_size=eps / 2, steps=5)
    images = torch.rand(16, 3, 32, 32)
    images[:4] = 0.0  # at the range's edge: clipping must win over the ball
    weights = torch.randn(3, 32, 32)
    seen = []

    def loss(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return (x * weights).sum()

    seen.append(pgd.perturb(loss, images))
    for x in seen:
        delta = (x - images).flatten(1)
        size = delta.abs().max(1).values if threat_model == "linf" else delta.norm(dim=1)
        assert float(size.max()) <= eps * (1 + 1e-5)
        assert float(x.min()) >= 0 and float(x.max()) <= 1


def test_linf_pgd_reaches_the_corner_that_maximises_a_linear_loss():
    weights = torch.randn(3, 32, 32)
    images = torch.full((2, 3, 32, 32), 0.5)
    pgd = PGD("linf", EPS, step_size=EPS / 4, steps=10)  # 2.5 epsilon of travel from anywhere
    x = pgd.perturb(lambda z: (z * weights).sum(), images)
    assert torch.allclose(x - images, EPS * weights.sign().expand_as(images), atol=1e-6)


def test_l2_pgd_moves_along_the_gradient_to_the_sphere():
    weights = torch.randn(3, 32, 32)
    images = torch.full((2, 3, 32, 32), 0.5)
    pgd = PGD("l2", 0.5, step_size=0.2, steps=10, random_start=False)
    x = pgd.perturb(lambda z: (z * weights).sum(), images)
    expected = 0.5 * weights / weights.norm()
    assert torch.allclose(x - images, expected.expand_as(images), atol=1e-5)


@pytest.mark.parametrize("threat_model", ["linf", "l2"])
def test_random_start_fills_the_ball(threat_model):
    eps = 0.1 if threat_model == "linf" else 2.0
    images = torch.full((256, 3, 32, 32), 0.5)
    delta = PGD(threat_model, eps, 0.01, 1).start(images, torch.Generator().manual_seed(0))
    flat = delta.flatten(1)
    if threat_model == "linf":  # uniform in [-eps, eps] per pixel
        assert float(flat.abs().max()) <= eps and abs(float(flat.std()) - eps / 3**0.5) < 1e-3
    else:  # uniform in the ball: in 3,072 dimensions almost all of it lies near the sphere
        norms = flat.norm(dim=1)
        assert float(norms.max()) <= eps * (1 + 1e-5) and float(norms.min()) > 0.99 * eps
    assert not PGD(threat_model, eps, 0.01, 1, random_start=False).start(images).any()


# ---------------------------------------------------------------------------------- the attack in training


def test_the_attack_leaves_batchnorm_statistics_and_mode_alone():
    model = model_with()
    before = bn_buffers(model)
    x, y = batch()
    Adversary(PGD("linf", EPS, EPS / 4, 3))(model, x, y, {"rotation": 0.5})
    after = bn_buffers(model)
    assert model.training
    assert all(torch.equal(before[k], after[k]) for k in before)
    model(x)  # an ordinary training forward still updates them
    assert not torch.equal(before["backbone.bn.running_mean"], model.backbone.bn.running_mean)


def test_frozen_batchnorm_still_normalises_with_batch_statistics_in_train_mode():
    model = model_with()
    x, _ = batch()
    expected = model(x).detach()  # train mode: batch statistics (running ones now moved)
    with frozen_running_stats(model):
        assert torch.allclose(model(x), expected, atol=1e-6)
    assert all(
        m.track_running_stats for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)
    )


def test_the_adversarial_main_loss_is_higher_and_the_views_follow_aux_view():
    model = model_with()
    x, y = batch(16)
    clean_loss = float(main_loss(model, y)(x).detach())
    for view in ("adversarial", "clean"):
        main, aux = Adversary(PGD("linf", EPS, EPS / 4, 5), "main", view)(model, x, y, {})
        assert float(main_loss(model, y)(main).detach()) > clean_loss + 0.05
        assert torch.equal(aux, main if view == "adversarial" else x)


def test_total_attack_replays_the_task_draws_the_training_forward_then_uses():
    model = model_with(("rotation", "jigsaw"))
    x, y = batch()
    torch.manual_seed(3)
    adversary = Adversary(PGD("linf", EPS, EPS / 4, 2), attack_loss="total")
    adversary(model, x, y, {"rotation": 1.0, "jigsaw": 1.0})
    after_attack = torch.rand(5)
    torch.manual_seed(3)
    adversary.pgd.start(x)  # the random start is the only draw the replays do not repeat
    assert torch.equal(torch.rand(5), after_attack)


def test_replayable_randomness_rewinds_every_time_and_on_exit():
    with replayable_randomness(torch.device("cpu")) as rewind:
        first = torch.rand(3)
        rewind()
        assert torch.equal(torch.rand(3), first)
    assert torch.equal(torch.rand(3), first)


def test_total_attack_uses_the_lambdas():
    """With a large rotation lambda the perturbation serves the rotation loss, with 0 the main one."""
    x, y = batch(16)
    pgd = PGD("linf", EPS, EPS / 4, 5, random_start=False)
    rotation_loss = {}
    for weight in (0.0, 100.0):
        model = model_with()
        torch.manual_seed(1)
        adv, _ = Adversary(pgd, "total")(model, x, y, {"rotation": weight})
        rotation_loss[weight] = float(compute_losses(model, adv, y)["rotation"].detach())
    assert rotation_loss[100.0] > rotation_loss[0.0] + 0.05


def adversarial_config(**fields) -> TrainConfig:
    return TrainConfig(
        seed=0,
        data=DataConfig(augment=False),
        model=TINY,
        optim=OptimConfig(batch_size=8, epochs=2),
        tasks=TasksConfig(names=("rotation",)),
        weighting=WeightingConfig(**fields.pop("weighting", {})),
        runtime=RuntimeConfig(device="cpu"),
        adversarial=AdversarialConfig(train=True, steps=2, **fields),
    )


def test_the_trainer_trains_on_adversarial_examples_only_in_train_mode():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 16)
    assert Trainer(adversarial_config(), images, labels, 10).adversary is not None
    for evaluate in (False, True):
        adversarial = AdversarialConfig(evaluate=evaluate)
        cfg = dataclasses.replace(adversarial_config(), adversarial=adversarial)
        assert Trainer(cfg, images, labels, 10).adversary is None
    metrics = Trainer(adversarial_config(), images, labels, 10).train_epoch()
    assert np.isfinite(metrics["loss/main"]) and np.isfinite(metrics["loss/rotation"])


def test_warmup_grows_the_training_radius_step_by_step_to_epsilon():
    """16 images, batch 8: 2 steps an epoch; warm-up over 1.5 epochs = 3 steps at 1/3, 2/3, 1."""
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 16)
    trainer = Trainer(adversarial_config(warmup_epochs=1.5), images, labels, 10)
    full = trainer.adversary
    assert full is not None
    seen = []
    for _ in range(2):
        trainer.train_epoch(on_step=lambda m: seen.append(m["adv/train_epsilon"]))
    assert seen == pytest.approx([EPS / 3, 2 * EPS / 3, EPS, EPS])
    # the step shrinks with the radius, so the same number of PGD steps crosses the ball
    third = full.scaled(1 / 3).pgd
    assert (third.epsilon, third.step_size) == pytest.approx(
        (full.pgd.epsilon / 3, full.pgd.step_size / 3)
    )
    assert full.scaled(1.0) is full
    metrics = Trainer(adversarial_config(), images, labels, 10).train_epoch()
    assert metrics["adv/train_epsilon"] == pytest.approx(EPS)  # no warm-up: epsilon throughout


def test_meta_weighting_sees_the_adversarial_main_loss_in_place_of_the_clean_one():
    """The step with an adversary == the meta-gradient of the named losses at the PGD example."""
    x, y = batch(8)
    meta = batch(5, seed=1)
    cfg = WeightingConfig(name="meta", sections={"meta": {"warmup_epochs": 0, "meta_lr": 100.0}})
    pgd = PGD("linf", EPS, EPS / 4, 3)
    lambdas = {}
    for route in ("train_step", "by_hand", "clean"):
        model = model_with()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        weighting = create_weighting(cfg, ("rotation",))
        ctx = StepContext(model, optimizer, epoch=0, step=0, meta_batch=lambda: meta)
        torch.manual_seed(7)
        if route == "train_step":
            train_step(model, optimizer, weighting, x, y, ctx, Adversary(pgd))
            lambdas[route] = weighting.lambdas["rotation"]
        elif route == "by_hand":
            adv, _ = Adversary(pgd)(model, x, y, weighting.lambdas)
            losses = compute_losses(model, adv, y, adv)
            mg = meta_gradient(model, losses, weighting.lambdas, 0.1, meta, optimizer)
            lambdas[route] = max(0.5 - 100.0 * float(mg.hypergrad[0]), 0.0)
        else:
            train_step(model, optimizer, weighting, x, y, ctx)
            lambdas[route] = weighting.lambdas["rotation"]
    assert lambdas["train_step"] != 0.5  # the meta step moved lambda
    assert lambdas["train_step"] == pytest.approx(lambdas["by_hand"], rel=1e-5)
    assert lambdas["train_step"] != pytest.approx(lambdas["clean"], rel=1e-3)


# ---------------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("adversarial.epsilon=-0.1", "adversarial.epsilon = -0.1 must be > 0"),
        ("adversarial.epsilon=2", "adversarial.epsilon = 2.0 must be > 0 and <= 1"),
        ("adversarial.steps=0", "adversarial.steps = 0 must be >= 1"),
        ("adversarial.warmup_epochs=-1", "adversarial.warmup_epochs = -1.0 must be >= 0"),
        ("adversarial.step_size=0", "adversarial.step_size = 0.0 must be > 0"),
        ("adversarial.threat_model=l3", "adversarial.threat_model = 'l3' is not allowed"),
        ("adversarial.attack_loss=aux", "adversarial.attack_loss = 'aux' is not allowed"),
        ("adversarial.aux_view=both", "adversarial.aux_view = 'both' is not allowed"),
        ("adversarial.train=maybe", "adversarial.train = 'maybe' must be true or false"),
        ("adversarial.sweep=[1,1]", "adversarial.sweep has duplicates"),
        ("adversarial.final_attacks=[fgsm]", "adversarial.final_attacks: unknown attack 'fgsm'"),
    ],
)
def test_bad_adversarial_values_fail_at_parse_time_naming_the_field(override, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        from_dict(TrainConfig, apply_overrides({}, [override]))


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match=re.escape("adversarial.threat_model = 'l3'")):
        AdversarialConfig(threat_model="l3")  # type: ignore[arg-type]


def test_l2_epsilon_may_exceed_one_and_step_size_defaults_to_madrys_rule():
    assert AdversarialConfig(threat_model="l2", epsilon=2.0).epsilon == 2.0
    assert AdversarialConfig().pgd_step_size == pytest.approx(2 / 255)  # 2.5 * (8/255) / 10
    assert AdversarialConfig(step_size=0.01).pgd_step_size == 0.01


@pytest.mark.parametrize(
    "override",
    ["adversarial.epsilon=-0.1", "adversarial.steps=0", "adversarial.threat_model=l3"],
)
def test_the_cli_refuses_bad_values_with_one_line_and_exit_2(override, capsys):
    assert main(["train", override]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override.split("=")[0] in err
