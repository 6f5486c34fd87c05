"""ConvNormAct, StackedConv, AsymmetricConv, ReducedConv: shapes, parameter formulas, receptive fields, errors."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from _helpers import conv_weights, n_params
from cnnlab.blocks import AsymmetricConv, ConvNormAct, ReducedConv, StackedConv


def empirical_rf(module: nn.Module, channels: int, size: int = 33) -> tuple[int, int]:
    """Height and width of the non-zero input-gradient region of the centre output unit."""
    torch.manual_seed(0)
    module = copy.deepcopy(module).eval().double()
    for p in module.parameters():  # positive weights: no cancellation can hide a connection
        p.data = p.data.abs() + 0.01
    x = torch.randn(1, channels, size, size, dtype=torch.float64, requires_grad=True)
    y = module(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1)


@pytest.mark.parametrize("size", [7, 16, 33])
@pytest.mark.parametrize("kernel", [1, 3, 5, (1, 7), (7, 1), (3, 5)])
def test_conv_norm_act_keeps_size_at_stride_1(kernel, size):
    block = ConvNormAct(4, 6, kernel)
    assert block(torch.randn(2, 4, size, size)).shape == (2, 6, size, size)


@pytest.mark.parametrize("size", [8, 15, 32])
def test_conv_norm_act_stride_2_halves(size):
    block = ConvNormAct(3, 5, 3, stride=2)
    assert block(torch.randn(1, 3, size, size)).shape == (1, 5, (size + 1) // 2, (size + 1) // 2)


@pytest.mark.parametrize(
    "cin,cout,k,groups,norm,bias",
    [(3, 8, 3, 1, True, None), (8, 8, 3, 4, True, None), (6, 12, (1, 7), 1, False, None), (5, 7, 5, 1, True, True)],
)
def test_conv_norm_act_params_match_formula(cin, cout, k, groups, norm, bias):
    kh, kw = (k, k) if isinstance(k, int) else k
    block = ConvNormAct(cin, cout, k, groups=groups, norm=norm, bias=bias)
    use_bias = (not norm) if bias is None else bias
    expected = cout * (cin // groups) * kh * kw + (cout if use_bias else 0) + (2 * cout if norm else 0)
    assert n_params(block) == expected


def test_conv_norm_act_preactivation_order_and_norm_width():
    block = ConvNormAct(4, 9, 3, preact=True)
    assert [name for name, _ in block.named_children()] == ["bn", "act", "conv"]
    assert block.bn.num_features == 4
    assert n_params(block) == 9 * 4 * 9 + 2 * 4


def test_conv_norm_act_without_activation_or_norm():
    block = ConvNormAct(3, 3, 3, norm=False, act=None)
    assert [name for name, _ in block.named_children()] == ["conv"]
    assert block.conv.bias is not None


def test_gradients_reach_input_for_every_block():
    blocks = [ConvNormAct(3, 4, 3), StackedConv(3, 4, 7), AsymmetricConv(3, 4, 5),
              AsymmetricConv(3, 4, 3, parallel=True), ReducedConv(3, 8, 2, 5)]
    for block in blocks:
        x = torch.randn(2, 3, 9, 9, requires_grad=True)
        block(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, type(block).__name__


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_stacked_conv_depth_shape_and_params(k):
    c = 8
    block = StackedConv(c, c, k, norm=False, bias=False)
    assert len(block) == (k - 1) // 2
    assert block(torch.randn(1, c, 11, 11)).shape == (1, c, 11, 11)
    assert n_params(block) == (k - 1) // 2 * 9 * c * c


def test_stacked_3x3_has_receptive_field_of_5x5_with_18_of_25_weights():
    c = 6
    single = ConvNormAct(c, c, 5, norm=False, act=None, bias=False)
    stacked = StackedConv(c, c, 5, norm=False, act=None, bias=False)
    assert empirical_rf(single, c) == (5, 5)
    assert empirical_rf(stacked, c) == (5, 5)
    assert conv_weights(stacked) * 25 == conv_weights(single) * 18


def test_stacked_7x7_is_three_3x3_with_27_of_49_weights():
    c = 4
    single = ConvNormAct(c, c, 7, norm=False, act=None, bias=False)
    stacked = StackedConv(c, c, 7, norm=False, act=None, bias=False)
    assert empirical_rf(stacked, c) == empirical_rf(single, c) == (7, 7)
    assert conv_weights(stacked) * 49 == conv_weights(single) * 27


@pytest.mark.parametrize("n", [3, 5, 7])
def test_asymmetric_factorization_weights_2_over_n_and_same_receptive_field(n):
    c = 5
    square = ConvNormAct(c, c, n, norm=False, act=None, bias=False)
    factored = AsymmetricConv(c, c, n, norm=False, act=None, bias=False)
    assert conv_weights(factored) * n * n == conv_weights(square) * 2 * n  # 3x3: 6/9, 7x7: 14/49
    assert empirical_rf(factored, c) == empirical_rf(square, c) == (n, n)
    assert factored(torch.randn(1, c, 12, 12)).shape == (1, c, 12, 12)


def test_asymmetric_order():
    vertical = AsymmetricConv(2, 2, 7)
    horizontal = AsymmetricConv(2, 2, 7, vertical_first=False)
    assert vertical.conv1.conv.kernel_size == (7, 1) and vertical.conv2.conv.kernel_size == (1, 7)
    assert horizontal.conv1.conv.kernel_size == (1, 7) and horizontal.conv2.conv.kernel_size == (7, 1)


def test_asymmetric_parallel_concatenates_1xn_and_nx1():
    cin, cout = 6, 4
    block = AsymmetricConv(cin, cout, 3, parallel=True, norm=False, bias=False, act=None)
    y = block(torch.randn(2, cin, 8, 8))
    assert y.shape == (2, 2 * cout, 8, 8) and block.out_channels == 2 * cout
    assert n_params(block) == 2 * 3 * cin * cout
    # the first half only sees a 1x3 window, the second a 3x1 window
    assert empirical_rf(nn.Sequential(block.conv_1xn), cin) == (1, 3)
    assert empirical_rf(nn.Sequential(block.conv_nx1), cin) == (3, 1)


def test_reduced_conv_params_and_macs_saving():
    cin, cout, r, k, hw = 192, 32, 16, 5, 28
    block = ReducedConv(cin, cout, r, k, norm=False, bias=False)
    assert n_params(block) == cin * r + r * cout * k * k
    assert block(torch.randn(1, cin, hw, hw)).shape == (1, cout, hw, hw)
    # GoogLeNet's 5x5 branch of inception (3a): the 1x1 reduction cuts the MACs about 10x
    direct = hw * hw * cin * cout * k * k
    reduced = hw * hw * (cin * r + r * cout * k * k)
    assert direct / reduced > 9


@pytest.mark.parametrize(
    "factory,argument",
    [
        (lambda: ConvNormAct(3, 8, 4), "kernel_size"),
        (lambda: ConvNormAct(3, 8, (3, 2)), "kernel_size"),
        (lambda: ConvNormAct(0, 8, 3), "in_channels"),
        (lambda: ConvNormAct(3, -1, 3), "out_channels"),
        (lambda: ConvNormAct(6, 8, 3, groups=4), "groups"),
        (lambda: ConvNormAct(3, 8, 3, stride=0), "stride"),
        (lambda: ConvNormAct(3, 8, 3, act="swishy"), "act"),
        (lambda: StackedConv(3, 8, 4), "kernel_size"),
        (lambda: StackedConv(3, 8, 1), "kernel_size"),
        (lambda: AsymmetricConv(3, 8, 6), "kernel_size"),
        (lambda: AsymmetricConv(3, 8, 3, mid_channels=0), "mid_channels"),
        (lambda: ReducedConv(3, 8, 0), "reduce_channels"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_argument(factory, argument):
    with pytest.raises(ValueError, match=argument):
        factory()


def test_even_kernel_allowed_with_explicit_padding():
    block = ConvNormAct(3, 4, 2, stride=2, padding=0)
    assert block(torch.randn(1, 3, 8, 8)).shape == (1, 4, 4, 4)


def test_pool_between_conv_and_norm():
    # airbench's conv groups (arXiv:2404.00498): conv -> 2x2 max-pool -> BN -> GELU; BN sees 1/4 of the pixels
    block = ConvNormAct(3, 4, 3, pool=2, act="gelu")
    assert [name for name, _ in block.named_children()] == ["conv", "pool", "bn", "act"]
    x = torch.randn(2, 3, 9, 9)
    block.eval()
    expected = block.act(block.bn(torch.nn.functional.max_pool2d(block.conv(x), 2)))
    torch.testing.assert_close(block(x), expected)
    assert block(x).shape == (2, 4, 4, 4)
    assert sum(p.numel() for p in block.parameters()) == 9 * 3 * 4 + 2 * 4  # the pool adds no parameter
    with pytest.raises(ValueError, match="pool"):
        ConvNormAct(3, 4, 3, pool=0)
    with pytest.raises(ValueError, match="preact"):
        ConvNormAct(3, 4, 3, pool=2, preact=True)


def test_conv_norm_act_exposes_its_layers():
    unit, bare = ConvNormAct(4, 8, 3, act="gelu", pool=2), ConvNormAct(4, 8, 3, norm=False, act=None)
    assert isinstance(unit.normalization, nn.BatchNorm2d) and unit.normalization.num_features == 8
    assert isinstance(unit.activation, nn.GELU) and isinstance(unit.pooling, nn.MaxPool2d)
    assert bare.normalization is None and bare.activation is None and bare.pooling is None
