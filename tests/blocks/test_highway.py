"""Highway layers: shapes, parameter formula, closed gate = identity, open gate = transform, bad arguments."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import n_params
from cnnlab.blocks.highway import HighwayConv, HighwayLinear


@pytest.mark.parametrize("channels,size", [(1, 1), (8, 5), (16, 12)])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_conv_shape_and_params(channels, size, kernel):
    layer = HighwayConv(channels, kernel)
    assert layer(torch.randn(2, channels, size, size + 2)).shape == (2, channels, size, size + 2)
    assert n_params(layer) == 2 * (kernel * kernel * channels * channels + channels)
    assert n_params(HighwayConv(channels, kernel, norm=True)) == 2 * kernel**2 * channels**2 + 3 * channels


@pytest.mark.parametrize("features", [1, 7, 64])
def test_linear_shape_and_params(features):
    layer = HighwayLinear(features)
    assert layer(torch.randn(3, features)).shape == (3, features)
    assert n_params(layer) == 2 * (features * features + features)


@pytest.mark.parametrize("gate_bias", [-1.0, -2.0, -3.5])
def test_gate_bias_initialization(gate_bias):
    assert torch.all(HighwayConv(8, gate_bias=gate_bias).gate.bias == gate_bias)
    assert torch.all(HighwayLinear(8, gate_bias=gate_bias).gate.bias == gate_bias)
    x = torch.randn(4, 8)
    layer = HighwayLinear(8, gate_bias=gate_bias)
    nn.init.zeros_(layer.gate.weight)
    t = torch.sigmoid(torch.tensor(gate_bias))  # the gate value at init with a zero gate weight
    assert torch.allclose(layer(x), t * layer.transform(x) + (1 - t) * x, atol=1e-6)


@pytest.mark.parametrize("make,shape", [(lambda: HighwayConv(6, 3), (2, 6, 5, 5)),
                                        (lambda: HighwayLinear(6), (2, 6))])
def test_closed_gate_passes_the_input_through(make, shape):
    layer = make()
    nn.init.zeros_(layer.gate.weight)
    nn.init.constant_(layer.gate.bias, -100.0)  # sigmoid(-100) = 0 in float32: T = 0, carry everything
    x = torch.randn(shape)
    assert torch.equal(layer(x), x)


@pytest.mark.parametrize("make,shape", [(lambda: HighwayConv(6, 3), (2, 6, 5, 5)),
                                        (lambda: HighwayLinear(6), (2, 6))])
def test_open_gate_gives_the_transform(make, shape):
    layer = make()
    nn.init.zeros_(layer.gate.weight)
    nn.init.constant_(layer.gate.bias, 100.0)  # T = 1: a plain layer
    x = torch.randn(shape)
    assert torch.allclose(layer(x), layer.transform(x), atol=1e-6)


@pytest.mark.parametrize("make,shape", [(lambda: HighwayConv(6, 3), (2, 6, 5, 5)),
                                        (lambda: HighwayLinear(6), (2, 6))])
def test_gradients_reach_input_and_every_parameter(make, shape):
    layer = make()
    x = torch.randn(shape, requires_grad=True)
    layer(x).square().sum().backward()
    assert x.grad.abs().sum() > 0 and all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


def test_macs_are_two_convolutions():
    c, h, k = 8, 6, 3
    total = 0

    def hook(m, inputs, out):
        nonlocal total
        total += out.shape[2] * out.shape[3] * m.out_channels * m.in_channels * k * k

    layer = HighwayConv(c, k)
    for m in layer.modules():
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(hook)
    layer(torch.randn(1, c, h, h))
    assert total == 2 * h * h * k * k * c * c


@pytest.mark.parametrize("kwargs,match", [
    ({"channels": 0}, "channels must be a positive int"),
    ({"channels": -3}, "channels must be a positive int"),
    ({"kernel_size": 2}, "kernel_size must be odd"),
    ({"gate_bias": "low"}, "gate_bias must be a float"),
])
def test_bad_conv_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HighwayConv(**{"channels": 8, **kwargs})


def test_bad_linear_arguments():
    with pytest.raises(ValueError, match="features must be a positive int"):
        HighwayLinear(0)
    with pytest.raises(ValueError, match="gate_bias"):
        HighwayLinear(4, gate_bias=None)
