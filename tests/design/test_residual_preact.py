"""to_residual and to_preactivation: plain56 -> resnet56 and resnet110 -> preact_resnet110, layer for layer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from _helpers import n_params
from cnnlab.blocks import ConvNormAct
from cnnlab.blocks.residual import BasicBlock, PreActBasicBlock, ZeroPadShortcut
from cnnlab.design import compare, to_preactivation, to_residual
from cnnlab.models import create_model


def signature(model: nn.Module) -> list[tuple[str, str, tuple]]:
    """Every module's name, type and own parameter shapes, in registration order."""
    return [(name, type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
            for name, m in model.named_modules()]


def cifar_resnet_params(n: int, classes: int = 10) -> int:
    """He et al. 2015 Sec. 4.2: 3x3 stem to 16, three stages of n basic units at widths 16, 32, 64, BN after each
    conv, option A shortcuts (no parameters), then a 64 -> classes linear layer."""
    total = 9 * 3 * 16 + 2 * 16
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += 9 * c_in * width + 2 * width + 9 * width * width + 2 * width
            c_in = width
    return total + 64 * classes + classes


def cifar_receptive_field(n: int) -> int:
    """3x3 stem, then 2n 3x3 convs per stage; the first conv of stages 2 and 3 has stride 2 (jumps 1, 2, 4)."""
    return 3 + 2 * (2 * n) * 1 + (2 * 1 + 2 * (2 * n - 1) * 2) + (2 * 2 + 2 * (2 * n - 1) * 4)


def test_to_residual_plain56_is_resnet56():
    plain, resnet = create_model("plain56"), create_model("resnet56")
    new, record = to_residual(plain)
    report = compare(plain, new, record)
    assert n_params(new) == n_params(resnet) == cifar_resnet_params(9) == 853_018
    assert signature(new) == signature(resnet)
    assert report.before.receptive_field == report.after.receptive_field == (cifar_receptive_field(9),) * 2
    assert len(report.replaced) == 27  # every unit gets its shortcut
    assert isinstance(new.layer2[0].shortcut, ZeroPadShortcut) and isinstance(new.layer2[1].shortcut, nn.Identity)
    # the same function: resnet56's weights in the transformed plain56 give resnet56's outputs exactly
    new.load_state_dict(resnet.state_dict())
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(new.eval()(x), resnet.eval()(x))
    assert all(m.shortcut is None for m in plain.modules() if isinstance(m, BasicBlock))  # input untouched


def test_to_residual_option_b_adds_the_projections():
    plain = create_model("plain20")
    new, record = to_residual(plain, shortcut="B")
    report = compare(plain, new, record)
    # two stage transitions (16 -> 32, 32 -> 64), each a 1x1 stride-2 conv + BN
    assert report.after.params - report.before.params == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
    assert n_params(new) == n_params(create_model("resnet20", shortcut="B"))


def test_to_residual_pairs_conv_units_of_a_sequential():
    units = [ConvNormAct(3, 16, 3), ConvNormAct(16, 16, 3), ConvNormAct(16, 16, 3), ConvNormAct(16, 32, 3, stride=2),
             ConvNormAct(32, 32, 3)]
    plain = nn.Sequential(*units)
    new, record = to_residual(plain)
    report = compare(plain, new, record, input_size=(3, 16, 16))
    # pairs from the end of the run: (3, 4) with an option A shortcut, (1, 2) with an identity; 0 (the stem) alone
    assert list(new._modules) == ["0", "1_2", "3_4"]
    assert isinstance(new[1].shortcut, nn.Identity) and isinstance(new[2].shortcut, ZeroPadShortcut)
    assert n_params(new) == n_params(plain)
    assert report.before.receptive_field == report.after.receptive_field == (1 + 2 * 4 + 2 * 2,) * 2
    # act(conv2(conv1(x)) + shortcut(x)) with the original units, the second one's ReLU after the sum
    x = torch.randn(1, 3, 16, 16)
    ref = copy.deepcopy(plain).eval()
    with torch.no_grad():
        h = ref[0](x)
        h = torch.relu(ref[2].bn(ref[2].conv(ref[1](h))) + h)
        sub = h[:, :, ::2, ::2]
        h = torch.relu(ref[4].bn(ref[4].conv(ref[3](h))) + torch.cat([sub, torch.zeros_like(sub)], 1))
        assert torch.allclose(new.eval()(x), h, atol=1e-6)


def test_to_residual_not_applicable():
    model = nn.Sequential(ConvNormAct(3, 8, 3), nn.MaxPool2d(2), ConvNormAct(8, 8, 3))
    new, report = to_residual(model)
    assert not report.changed and "model unchanged" in report.notes[0] and repr(new) == repr(model)
    with pytest.raises(ValueError, match="shortcut"):
        to_residual(model, shortcut="C")


def test_to_preactivation_resnet110_is_preact_resnet110():
    resnet, preact = create_model("resnet110"), create_model("preact_resnet110")
    before = signature(resnet)
    new, record = to_preactivation(resnet)
    report = compare(resnet, new, record)
    assert signature(new) == signature(preact)
    assert n_params(new) == n_params(preact)
    # post -> pre moves BN: the stem loses its 2 * 16, a final BN on 64 is added, and each unit's first BN moves
    # from its output width to its input width (16 instead of 32, 32 instead of 64 at the two transitions)
    assert n_params(new) - n_params(resnet) == -2 * 16 + 2 * 64 + 2 * (16 - 32) + 2 * (32 - 64)
    new.load_state_dict(preact.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(new.eval()(x), preact.eval()(x))
    assert report.before.receptive_field == report.after.receptive_field == (cifar_receptive_field(18),) * 2
    assert [r.name for r in report.replaced][-2:] == ["stem", "norm"]
    assert signature(resnet) == before  # input untouched


def test_to_preactivation_bottleneck_resnet50_is_resnetv2_50():
    with torch.device("meta"):  # structure only: no weights materialised
        resnet, preact = create_model("resnet50"), create_model("resnetv2_50")
    new, _ = to_preactivation(resnet)
    assert signature(new) == signature(preact)


def test_to_preactivation_not_applicable():
    already = nn.Sequential(ConvNormAct(3, 16, 3, norm=False, act=None), PreActBasicBlock(16, 16, shortcut="A"))
    for model in (create_model("plain20"), already):
        new, report = to_preactivation(model)
        assert not report.changed and report.replaced == () and "model unchanged" in report.notes[0]
        assert signature(new) == signature(model)
