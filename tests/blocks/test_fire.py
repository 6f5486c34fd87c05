"""Fire module: shapes, parameter formula, gradient flow, simple bypass and argument errors."""

import pytest
import torch

from _helpers import n_params
from cnnlab.blocks import Fire


@pytest.mark.parametrize("c_in, s, e1, e3", [(96, 16, 64, 64), (512, 64, 256, 256), (7, 3, 5, 2)])
def test_shape_and_params(c_in, s, e1, e3):
    fire = Fire(c_in, s, e1, e3)
    out = fire(torch.randn(2, c_in, 9, 11))
    assert out.shape == (2, e1 + e3, 9, 11)
    # squeeze 1x1 + expand 1x1 + expand 3x3, each with a bias (SqueezeNet has no batch norm)
    assert n_params(fire) == (c_in * s + s) + (s * e1 + e1) + (9 * s * e3 + e3)


def test_paper_fire2_count():
    # SqueezeNet Table 1, fire2: s1x1=16, e1x1=64, e3x3=64 on 96 channels -> 11,920 params with biases
    assert n_params(Fire(96, 16, 64, 64)) == 96 * 16 + 16 + 16 * 64 + 64 + 9 * 16 * 64 + 64 == 11_920


def test_output_is_expand1x1_then_expand3x3_concatenated():
    fire = Fire(4, 2, 3, 5)
    x = torch.randn(1, 4, 6, 6)
    w_s, b_s = fire.squeeze.conv.weight, fire.squeeze.conv.bias
    squeezed = torch.relu(torch.nn.functional.conv2d(x, w_s, b_s))
    e1 = torch.relu(torch.nn.functional.conv2d(squeezed, fire.expand1x1.conv.weight, fire.expand1x1.conv.bias))
    e3 = torch.relu(torch.nn.functional.conv2d(squeezed, fire.expand3x3.conv.weight, fire.expand3x3.conv.bias,
                                               padding=1))
    torch.testing.assert_close(fire(x), torch.cat([e1, e3], dim=1))


def test_bypass_adds_input_and_no_params():
    plain, bypassed = Fire(128, 16, 64, 64), Fire(128, 16, 64, 64, bypass=True)
    assert n_params(plain) == n_params(bypassed)
    bypassed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 128, 5, 5)
    torch.testing.assert_close(bypassed(x), plain(x) + x)


def test_gradients_reach_input_and_every_parameter():
    fire = Fire(8, 4, 6, 2, bypass=True)
    x = torch.randn(2, 8, 7, 7, requires_grad=True)
    fire(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in fire.parameters())


def test_norm_option_adds_batch_norm():
    fire = Fire(16, 4, 8, 8, norm=True)
    # conv biases are dropped before a norm; each norm adds scale and shift
    assert n_params(fire) == 16 * 4 + 2 * 4 + 4 * 8 + 2 * 8 + 9 * 4 * 8 + 2 * 8


@pytest.mark.parametrize("args, kwargs, match", [
    ((64, 16, 64, 64), {"bypass": True}, "in_channels"),
    ((0, 16, 64, 64), {}, "in_channels"),
    ((64, 0, 64, 64), {}, "squeeze_channels"),
    ((64, 16, -1, 64), {}, "expand1x1_channels"),
    ((64, 16, 64, 2.5), {}, "expand3x3_channels"),
])
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Fire(*args, **kwargs)
