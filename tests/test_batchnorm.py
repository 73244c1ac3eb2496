"""BatchNorm running statistics come from the clean main batch: auxiliary views never move them
(``tasks.running_stats=clean``, the default), unless ``every_view`` asks for the old behaviour."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from auxtune.config import ConfigError, from_dict
from auxtune.robust.batchnorm import frozen_running_stats
from auxtune.robust.config import ModelConfig, TasksConfig, TrainConfig
from auxtune.robust.model import MultiHeadNet
from auxtune.robust.training import compute_losses

# views that change the input statistics a lot: channel order, blur, rotation
TASKS = ("rotation", "rgb_permutation", "blur_reconstruction")


def model(running_stats: str = "clean") -> MultiHeadNet:
    torch.manual_seed(0)
    tasks = TasksConfig(names=TASKS, decoder_width=8, running_stats=running_stats)  # type: ignore[arg-type]
    return MultiHeadNet(ModelConfig(depth=10, widen_factor=1, base_width=4), tasks, 10).train()


def warm_coloured_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Red-heavy images: a channel permutation or a blur changes their statistics visibly."""
    g = torch.Generator().manual_seed(1)
    images = torch.rand(16, 3, 32, 32, generator=g) * torch.tensor([1.0, 0.5, 0.1]).view(1, 3, 1, 1)
    return images, torch.randint(10, (16,), generator=g)


def backbone_stats(net: MultiHeadNet) -> dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in net.backbone.state_dict().items()
        if "running" in k or "num_batches" in k
    }


def test_auxiliary_views_leave_the_running_statistics_to_the_clean_batch():
    net, images = model(), warm_coloured_batch()
    clean_only = copy.deepcopy(net)
    compute_losses(net, *images)
    clean_only(images[0])  # the main forward alone, in train mode
    for key, expected in backbone_stats(clean_only).items():
        assert torch.equal(backbone_stats(net)[key], expected), key


def test_every_view_lets_each_view_move_the_running_statistics():
    net, images = model("every_view"), warm_coloured_batch()
    clean_only = copy.deepcopy(net)
    compute_losses(net, *images)
    clean_only(images[0])
    stats, clean = backbone_stats(net), backbone_stats(clean_only)
    assert int(stats["bn.num_batches_tracked"]) == 1 + len(TASKS)
    assert not torch.allclose(stats["bn.running_mean"], clean["bn.running_mean"])


def test_the_rule_changes_no_loss_and_no_gradient():
    """Training math is the same: every view is still normalised by its own batch statistics."""
    results = []
    for rule in ("clean", "every_view"):
        net = model(rule)
        torch.manual_seed(2)  # the same task views
        losses = compute_losses(net, *warm_coloured_batch())
        sum(losses.values()).backward()
        results.append((losses, [p.grad.clone() for p in net.parameters() if p.grad is not None]))
    (losses_a, grads_a), (losses_b, grads_b) = results
    assert all(torch.equal(losses_a[k], losses_b[k]) for k in losses_a)
    assert all(torch.equal(a, b) for a, b in zip(grads_a, grads_b, strict=True))


def test_heads_keep_their_own_running_statistics():
    """A decoder's BatchNorm only ever sees its own task's view: it keeps learning its statistics."""
    net = model()
    decoder_bns = [
        m for m in net.task("blur_reconstruction").modules() if isinstance(m, _BatchNorm)
    ]
    compute_losses(net, *warm_coloured_batch())
    assert all(int(bn.num_batches_tracked) == 1 for bn in decoder_bns)


def test_frozen_running_stats_restores_tracking_after_an_error_and_spares_eval_mode():
    bn = torch.nn.BatchNorm2d(3)
    bn.running_mean.fill_(2.0)
    with pytest.raises(RuntimeError), frozen_running_stats(bn):
        raise RuntimeError("boom")
    assert bn.track_running_stats
    x = torch.randn(4, 3, 2, 2)
    bn.eval()
    with frozen_running_stats(bn):
        frozen = bn(x)
    assert torch.equal(frozen, bn(x))  # eval still normalises with the running statistics


def test_an_unknown_rule_is_refused_with_the_field_name():
    with pytest.raises(ConfigError, match=r"tasks\.running_stats"):
        from_dict(TrainConfig, {"tasks": {"running_stats": "sometimes"}})
