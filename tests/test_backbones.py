"""WideResNet: widths, depth rule, shapes and the parameter counts of the reference implementation."""

from __future__ import annotations

import pytest
import torch

from auxtune.config import ConfigError
from auxtune.robust.backbones import BasicBlock, WideResNet
from auxtune.robust.config import ModelConfig


@pytest.mark.parametrize(
    ("depth", "widen", "base", "features"),
    [
        (40, 2, 16, 128),  # WRN-40-2, the paper's backbone: 64k = 128 features
        (16, 2, 16, 128),  # WRN-16-2: same width, fewer blocks
        (10, 1, 4, 16),  # the tiny test variant: 4 * base_width * widen
    ],
)
def test_feature_width_is_the_last_stage_width(depth, widen, base, features):
    net = WideResNet(depth, widen, base_width=base)
    assert net.num_features == features
    last_conv = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last_conv.out_channels == features  # the penultimate layer, before pooling


@pytest.mark.parametrize("depth", [10, 16, 40])
def test_blocks_per_stage_is_depth_minus_4_over_6(depth):
    net = WideResNet(depth, 1, base_width=4)
    assert [len(stage) for stage in net.stages] == [(depth - 4) // 6] * 3
    assert sum(isinstance(m, BasicBlock) for m in net.modules()) == 3 * ((depth - 4) // 6)


@pytest.mark.parametrize(
    ("depth", "widen", "params"),
    [
        # With a 10-class linear head these are the counts of the reference WRN code
        # (Zagoruyko & Komodakis; Hendrycks et al.'s AugMix): 2.24M for WRN-40-2, 36.5M for WRN-28-10.
        (40, 2, 2_243_546),
        (28, 10, 36_479_194),
    ],
)
def test_parameter_count_matches_the_reference_wrn(depth, widen, params):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = WideResNet(depth, widen)
    count = sum(p.numel() for p in net.parameters()) + net.num_features * 10 + 10
    assert count == params


@pytest.mark.parametrize("depth", [0, 12, 18, 41])
def test_depth_not_6n_plus_4_is_refused_clearly(depth):
    with pytest.raises(ConfigError, match=rf"model.depth = {depth} is not 6n\+4; use e.g. 10, 16"):
        WideResNet(depth=depth)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"widen_factor": 0}, "model.widen_factor"),
        ({"dropout": 1.0}, "model.dropout"),
        ({"base_width": 0}, "model.base_width"),
    ],
)
def test_other_bad_sizes_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        WideResNet(**{"depth": 10, **kwargs})


def test_output_shapes_and_gradients():
    net = WideResNet(10, 2, base_width=4)
    images = torch.rand(3, 3, 32, 32, requires_grad=True)
    features = net(images)
    assert features.shape == (3, 32)
    assert torch.equal(features, net.forward_features(images))
    features.square().sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters())


def test_channels_last_and_eval_mode_give_the_same_features():
    torch.manual_seed(0)
    net = WideResNet(10, 1, base_width=4).eval()
    images = torch.rand(4, 3, 32, 32)
    expected = net(images)
    net_cl = net.to(memory_format=torch.channels_last)
    actual = net_cl(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    one = net(images[:1])  # eval mode: an image's features do not depend on its batch
    torch.testing.assert_close(one, expected[:1], rtol=1e-4, atol=1e-5)


def test_normalisation_is_inside_the_network_and_not_in_the_state_dict():
    net = WideResNet(10, 1, base_width=4)
    assert not {"mean", "std"} & set(net.state_dict())
    assert net.mean.flatten().tolist() == pytest.approx([0.4914, 0.4822, 0.4465])


def test_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    net = WideResNet(10, 1, dropout=0.5, base_width=4)
    images = torch.rand(4, 3, 32, 32)
    assert not torch.equal(net(images), net(images))
    net.eval()
    assert torch.equal(net(images), net(images))


def test_from_config_builds_the_configured_network():
    net = WideResNet.from_config(ModelConfig(depth=16, widen_factor=3, base_width=8))
    assert net.num_features == 96
    assert len(net.stages[0]) == 2
