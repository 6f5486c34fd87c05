"""CIFAR highway nets: counts vs cards and the paper's figures, depth, forward, gate init, input limits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import meta_model, n_params
from cnnlab.blocks.highway import HighwayConv
from cnnlab.models import create_model, list_models, model_card

NAMES = ["highway19_cifar", "highway32_cifar"]
PAPER = {"highway19_cifar": (19, 2.3e6), "highway32_cifar": (32, 1.25e6)}  # Srivastava et al. 2015, CIFAR-10


def test_registered():
    assert set(list_models("highway*")) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_params_match_card_and_paper_within_one_percent(name):
    model = meta_model(name)
    assert n_params(model) == model_card(name).reference.params
    assert abs(n_params(model) / PAPER[name][1] - 1) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_depth_counts_convolutions_highway_layers_and_classifier(name):
    model = meta_model(name)
    highway = sum(isinstance(m, HighwayConv) for m in model.modules())
    plain_convs = sum(isinstance(m, nn.Conv2d) for m in model.modules()) - 2 * highway  # each has 2 convs
    assert plain_convs + highway + 1 == PAPER[name][0]


@pytest.mark.parametrize("name", NAMES)
def test_macs_match_card(name):
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.shape[2] * out.shape[3] * m.out_channels * m.in_channels * m.kernel_size[0] ** 2
        else:
            total += m.in_features * m.out_features

    model = meta_model(name).eval()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    model(torch.empty(1, 3, 32, 32, device="meta"))
    assert total == model_card(name).reference.macs


@pytest.mark.parametrize("name", NAMES)
def test_forward_num_classes_and_gate_bias(name):
    model = create_model(name, num_classes=4).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 8, 12)).shape == (2, 4)
    gates = [m.gate.bias for m in model.modules() if isinstance(m, HighwayConv)]
    # the model-wide He init must not overwrite the negative gate bias
    assert all(torch.all(b == b[0]) and b[0] < 0 for b in gates)
    other = create_model(name, gate_bias=-3.0)
    assert all(torch.all(m.gate.bias == -3.0) for m in other.modules() if isinstance(m, HighwayConv))
    a, b = meta_model(name, num_classes=10), meta_model(name, num_classes=100)
    changed = {k for k, v in a.state_dict().items() if b.state_dict()[k].shape != v.shape}
    assert changed == {"head.fc.weight", "head.fc.bias"}


@pytest.mark.parametrize("name", NAMES)
def test_smallest_input(name):
    model = meta_model(name).eval()
    assert model_card(name).min_input_size == 4  # two 2x2 poolings
    assert model(torch.empty(1, 3, 4, 4, device="meta")).shape == (1, 10)
    with pytest.raises(ValueError, match="smallest valid size is 4x4"):
        model(torch.empty(1, 3, 3, 8, device="meta"))


def test_backward_reaches_every_parameter():
    model = create_model("highway32_cifar").train()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in model.parameters()) and x.grad.abs().sum() > 0
