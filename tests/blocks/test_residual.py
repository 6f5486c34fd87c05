"""Residual units: shapes, parameter / MAC formulas, identity at zero residual, shortcut options, bad arguments."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _helpers import n_params
from cnnlab.blocks.residual import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    make_shortcut,
)

UNITS = [BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck]


def conv_macs(m: nn.Module, x: torch.Tensor) -> int:
    """MACs of every Conv2d, from the output shapes seen by forward hooks (independent of the docstrings)."""
    total = 0

    def hook(mod: nn.Conv2d, inputs, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = mod.kernel_size
        total += out.shape[2] * out.shape[3] * mod.out_channels * mod.in_channels // mod.groups * kh * kw

    handles = [c.register_forward_hook(hook) for c in m.modules() if isinstance(c, nn.Conv2d)]
    m(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("cin,cout,stride", [(16, 16, 1), (16, 32, 2), (64, 256, 1), (32, 64, 3)])
@pytest.mark.parametrize("size", [1, 7, 15])
def test_output_shape(unit, cin, cout, stride, size):
    x = torch.randn(2, cin, size, size + 1)
    y = unit(cin, cout, stride).eval()(x)
    assert y.shape == (2, cout, math.ceil(size / stride), math.ceil((size + 1) / stride))


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C", False])
def test_output_shape_every_shortcut_option(unit, shortcut):
    y = unit(16, 32, 2, shortcut=shortcut)(torch.randn(2, 16, 9, 9))
    assert y.shape == (2, 32, 5, 5)


def _projection(cin: int, cout: int, bn: bool) -> int:
    return cin * cout + (2 * cout if bn else 0)


@pytest.mark.parametrize("cin,cout,stride,shortcut", [
    (16, 16, 1, "B"), (16, 32, 2, "B"), (16, 32, 2, "A"), (16, 16, 1, "C"), (16, 32, 2, False)])
def test_basic_param_formulas(cin, cout, stride, shortcut):
    proj = shortcut == "C" or (shortcut == "B" and (cin != cout or stride != 1))
    post = 9 * cin * cout + 2 * cout + 9 * cout * cout + 2 * cout + (_projection(cin, cout, True) if proj else 0)
    pre = 2 * cin + 9 * cin * cout + 2 * cout + 9 * cout * cout + (_projection(cin, cout, False) if proj else 0)
    assert n_params(BasicBlock(cin, cout, stride, shortcut=shortcut)) == post
    assert n_params(PreActBasicBlock(cin, cout, stride, shortcut=shortcut)) == pre


@pytest.mark.parametrize("cin,cout,stride,groups", [(64, 256, 1, 1), (256, 512, 2, 1), (256, 256, 1, 32)])
def test_bottleneck_param_formulas(cin, cout, stride, groups):
    m = cout // 4
    proj = cin != cout or stride != 1
    convs = cin * m + 9 * m * m // groups + m * cout
    post = convs + 2 * m + 2 * m + 2 * cout + (_projection(cin, cout, True) if proj else 0)
    pre = convs + 2 * cin + 2 * m + 2 * m + (_projection(cin, cout, False) if proj else 0)
    assert n_params(Bottleneck(cin, cout, stride, groups=groups)) == post
    assert n_params(PreActBottleneck(cin, cout, stride, groups=groups)) == pre


@pytest.mark.parametrize("unit", [Bottleneck, PreActBottleneck])
def test_bottleneck_stride_placement_changes_macs_not_params(unit):
    cin, cout, h = 256, 512, 16
    m, ho = cout // 4, h // 2
    x = torch.randn(1, cin, h, h)
    v15, v1 = unit(cin, cout, 2), unit(cin, cout, 2, stride_in_1x1=True)
    assert n_params(v15) == n_params(v1)
    rest = ho * ho * (9 * m * m + m * cout + cin * cout)  # 3x3, expanding 1x1, projection: all at the output size
    assert conv_macs(v15, x) == h * h * cin * m + rest  # first 1x1 at the input size
    assert conv_macs(v1, x) == ho * ho * cin * m + rest
    assert v1.conv1.conv.stride == (2, 2) and v1.conv2.conv.stride == (1, 1)
    assert v15.conv1.conv.stride == (1, 1) and v15.conv2.conv.stride == (2, 2)


def test_basic_macs_formula():
    cin, cout, h = 16, 32, 8
    ho = h // 2
    macs = conv_macs(BasicBlock(cin, cout, 2), torch.randn(1, cin, h, h))
    assert macs == ho * ho * (9 * cin * cout + 9 * cout * cout + cin * cout)


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("shortcut", ["A", "B", "C", False])
def test_gradients_reach_input_and_every_parameter(unit, shortcut):
    block = unit(16, 32, 2, shortcut=shortcut)
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    block(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in block.parameters())


@pytest.mark.parametrize("unit", [BasicBlock, Bottleneck])
def test_post_activation_unit_with_zero_residual_is_identity_on_nonnegative_input(unit):
    block = unit(32, 32, zero_init_last=True).eval()  # last BN: scale 0, shift 0 -> residual branch is 0
    assert isinstance(block.shortcut, nn.Identity)
    x = torch.rand(2, 32, 6, 6)  # >= 0: the ReLU after the addition leaves it unchanged
    assert torch.equal(block(x), x)
    assert torch.equal(block(-x), torch.zeros_like(x))  # ... and it is still there after the addition


@pytest.mark.parametrize("unit", [PreActBasicBlock, PreActBottleneck])
def test_preact_unit_with_zero_residual_is_exactly_identity(unit):
    block = unit(32, 32, zero_init_last=True).train()
    x = torch.randn(2, 32, 6, 6)  # negative values too: no activation after the addition
    assert torch.equal(block(x), x)


@pytest.mark.parametrize("unit", [PreActBasicBlock, PreActBottleneck])
def test_preact_projection_takes_the_shared_bn_relu_output(unit):
    block = unit(16, 64, 2, shortcut="B", zero_init_last=True).eval()
    with torch.no_grad():
        block.preact.bn.running_mean.uniform_(-1, 1)
        block.preact.bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 16, 8, 8)
    expected = block.shortcut(torch.relu(block.preact.bn(x)))
    assert torch.allclose(block(x), expected)
    assert not torch.allclose(block(x), block.shortcut(x))


@pytest.mark.parametrize("unit", [PreActBasicBlock, PreActBottleneck])
def test_preact_option_a_shortcut_keeps_the_raw_input(unit):
    block = unit(16, 32, 2, shortcut="A", zero_init_last=True).eval()
    x = torch.randn(1, 16, 8, 8)
    y = block(x)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and torch.equal(y[:, 16:], torch.zeros(1, 16, 4, 4))


def test_option_a_subsamples_and_zero_pads():
    x = torch.randn(2, 3, 7, 6)
    y = ZeroPadShortcut(3, 5, 2)(x)
    assert y.shape == (2, 5, 4, 3)
    assert torch.equal(y[:, :3], x[:, :, ::2, ::2]) and not y[:, 3:].any()
    assert n_params(ZeroPadShortcut(3, 5, 2)) == 0


def test_shortcut_kinds():
    assert isinstance(make_shortcut("A", 16, 16, 1), nn.Identity)
    assert isinstance(make_shortcut("A", 16, 32, 2), ZeroPadShortcut)
    assert isinstance(make_shortcut("B", 16, 16, 1), nn.Identity)
    assert n_params(make_shortcut("B", 16, 32, 2)) == 16 * 32 + 2 * 32
    assert n_params(make_shortcut("C", 16, 16, 1)) == 16 * 16 + 2 * 16
    assert n_params(make_shortcut("B", 16, 32, 2, norm=False)) == 16 * 32
    assert make_shortcut(False, 16, 32, 2) is None


def test_plain_unit_has_no_shortcut():
    block = BasicBlock(16, 16, shortcut=False, zero_init_last=True).train()
    assert block.shortcut is None
    assert not block(torch.rand(2, 16, 5, 5)).any()  # zero residual and no shortcut: nothing left


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("kwargs,match", [
    ({"in_channels": 0}, "in_channels"),
    ({"out_channels": -4}, "out_channels"),
    ({"stride": 0}, "stride"),
    ({"stride": 1.5}, "stride"),
    ({"shortcut": "D"}, r"shortcut must be one of \('A', 'B', 'C', False\)"),
    ({"shortcut": True}, "shortcut must be one of"),
])
def test_bad_arguments_raise_value_error_naming_them(unit, kwargs, match):
    args = {"in_channels": 16, "out_channels": 32, "stride": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        unit(**args)


def test_bad_bottleneck_and_option_a_arguments():
    with pytest.raises(ValueError, match="multiple of expansion=4"):
        Bottleneck(16, 30)
    with pytest.raises(ValueError, match="mid_channels"):
        PreActBottleneck(16, 32, mid_channels=0)
    with pytest.raises(ValueError, match="groups=3"):
        Bottleneck(64, 64, groups=3)
    with pytest.raises(ValueError, match="shortcut='B'"):
        BasicBlock(32, 16, shortcut="A")
