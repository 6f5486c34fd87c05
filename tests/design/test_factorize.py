"""factorize: weight ratios in closed form (Szegedy et al. 2016, Sec. 3.1 / 3.2), receptive field and grid, and
the factorised units are exactly the blocks (StackedConv, AsymmetricConv): the zoo's factorized nets, rebuilt."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from _helpers import conv_weights, n_params
from cnnlab.analysis import analyze
from cnnlab.blocks import AsymmetricConv, ConvNormAct, StackedConv
from cnnlab.design import compare, factorize
from cnnlab.models import create_model

C = 32  # "at equal channels"


@pytest.mark.parametrize(("kernel", "style", "min_kernel", "ratio"), [
    (5, "stack3x3", 5, (2 * 3 * 3, 5 * 5)),  # two 3x3 for a 5x5: 18/25
    (7, "stack3x3", 5, (3 * 3 * 3, 7 * 7)),  # three 3x3 for a 7x7: 27/49 (VGG Sec. 2.3)
    (3, "asymmetric", 3, (3 + 3, 3 * 3)),  # 3x1 + 1x3: 6/9
    (7, "asymmetric", 5, (7 + 7, 7 * 7)),  # 1x7 + 7x1: 14/49
])
@pytest.mark.parametrize("unit", ["bare", "block"])
def test_weight_ratio_at_equal_channels(kernel, style, min_kernel, ratio, unit):
    layer = (nn.Conv2d(C, C, kernel, padding=kernel // 2, bias=False) if unit == "bare"
             else ConvNormAct(C, C, kernel))
    model = nn.Sequential(layer)
    new, record = factorize(model, style, min_kernel=min_kernel)
    report = compare(model, new, record, input_size=(C, 16, 16))
    num, den = ratio
    assert conv_weights(model) == den * C * C
    assert conv_weights(new) == num * C * C
    assert conv_weights(new) * den == conv_weights(model) * num
    # MACs at stride 1, same padding: H * W times the weights (conv only; BN / ReLU are "other" ops)
    assert report.before.macs == 16 * 16 * den * C * C
    assert report.after.macs == 16 * 16 * num * C * C
    assert [r.name for r in report.replaced] == ["0"]
    assert report.replaced[0].params_before == sum(p.numel() for p in model[0].parameters())


def rf_net() -> nn.Sequential:
    # closed-form receptive field: 1 + (5-1)*1 + (7-1)*1 + (5-1)*2 + (3-1)*4 = 27 (jumps 1, 1, 2, 4)
    return nn.Sequential(ConvNormAct(3, 8, 5), ConvNormAct(8, 8, 7, stride=2), ConvNormAct(8, 8, 5, stride=2),
                         nn.Conv2d(8, 8, 3, padding=1))


RF_NET = 1 + 4 * 1 + 6 * 1 + 4 * 2 + 2 * 4
# StackedConv strides its first 3x3, so the other 3x3 of a strided layer run at the next jump: the 7x7 /2 (jump 1)
# covers 1 + 2*1 + 2*2 + 2*2 = 11 instead of 7, the 5x5 /2 (jump 2) 1 + 2*2 + 2*4 = 13 instead of 9
RF_STACKED = 1 + 4 * 1 + (2 * 1 + 2 * 2 + 2 * 2) + (2 * 2 + 2 * 4) + 2 * 4


@pytest.mark.parametrize(("style", "min_kernel", "count", "field"), [
    ("stack3x3", 5, 3, RF_STACKED),
    ("asymmetric", 3, 2, RF_NET),  # AsymmetricConv has no stride: the two strided layers are skipped with a note
])
def test_receptive_field_analysis_and_gradient(style, min_kernel, count, field, probe):
    # before issue 14 the stack put the stride on its last 3x3 (field unchanged, 27); it now is StackedConv's
    model = rf_net()
    new, record = factorize(model, style, min_kernel=min_kernel)
    report = compare(model, new, record, input_size=(3, 64, 64))
    assert len(report.replaced) == count
    assert report.before.receptive_field == (RF_NET, RF_NET)
    assert report.after.receptive_field == (field, field)
    rows_before, cols_before = probe(copy.deepcopy(model), (3, 64, 64))
    rows_after, cols_after = probe(new, (3, 64, 64))
    assert len(rows_before) == len(cols_before) == RF_NET and len(rows_after) == len(cols_after) == field
    # the window grows (or stays) around the same centre: stride and padding keep the output grid aligned
    assert rows_after.start + rows_after.stop == rows_before.start + rows_before.stop
    assert cols_after.start + cols_after.stop == cols_before.start + cols_before.stop
    assert sum("AsymmetricConv has no stride" in n for n in record.notes) == (2 if style == "asymmetric" else 0)


def test_a_factorised_5x5_is_stacked_conv_and_the_zoo_nets_are_rebuilt():
    assert str(factorize(nn.Sequential(ConvNormAct(16, 16, 5, stride=2)))[0][0]) == str(StackedConv(16, 16, 5, 2))
    assert str(factorize(nn.Sequential(ConvNormAct(16, 16, 3)), "asymmetric", 3)[0][0]) == str(
        AsymmetricConv(16, 16, 3))
    # cifar_convnet's studied 5x5 layers, factorised, are its conv="3x3" arm: StackedConv(c, c, 5) (and then,
    # each 3x3 as 3x1 + 1x3, its conv="asymmetric" arm): same modules, parameter shapes and MACs
    with torch.device("meta"):
        conv5, conv3, asym = (create_model("cifar_convnet", conv=c) for c in ("5x5", "3x3", "asymmetric"))
    new, record = factorize(conv5)
    assert [r.name for r in record.replaced] == ["stage1.conv", "stage2.conv", "stage3.conv"]
    assert signature(new) == signature(conv3)
    assert n_params(new) == n_params(conv3) == 492_010
    assert analyze(new, (3, 32, 32)).macs == analyze(conv3, (3, 32, 32)).macs == 76_383_488
    new, _ = factorize(new, "asymmetric", min_kernel=3, where="stage*.conv.*")
    assert [(n, "Sequential" if t == "StackedConv" else t, p) for n, t, p in signature(new)] == signature(asym)
    assert n_params(new) == n_params(asym) == 363_882
    assert analyze(new, (3, 32, 32)).macs == analyze(asym, (3, 32, 32)).macs == 57_509_120


def signature(model: nn.Module) -> list[tuple[str, str, tuple]]:
    """Every module's name, type and own parameter shapes, in registration order."""
    return [(name, type(m).__name__, tuple(tuple(p.shape) for p in m.parameters(recurse=False)))
            for name, m in model.named_modules()]


@pytest.mark.parametrize("style", ["stack3x3", "asymmetric"])
@pytest.mark.parametrize("size", [33, 17, 11])
def test_output_grid_kept_for_odd_sizes_and_strides(style, size):
    model = nn.Sequential(nn.Conv2d(3, 4, 7, stride=2, padding=3), nn.ReLU(), nn.Conv2d(4, 4, 5, stride=3),
                          ConvNormAct(4, 6, 5, stride=2, dilation=2))
    new, record = factorize(model, style, min_kernel=5)
    x = torch.randn(2, 3, size, size)
    assert new.eval()(x).shape == model.eval()(x).shape
    # the unpadded 5x5 /3 cannot be one of the blocks with the same grid, nor can AsymmetricConv stride
    assert [r.name for r in record.replaced] == (["0", "3"] if style == "stack3x3" else [])
    assert any(n.startswith("2: skipped") for n in record.notes)


def test_where_selects_layers_and_names_stay_stable():
    model = nn.Sequential(ConvNormAct(3, 8, 5), ConvNormAct(8, 8, 5), ConvNormAct(8, 8, 5))
    new, record = factorize(model, where="1")
    assert [r.name for r in record.replaced] == ["1"]
    old_state, new_state = model.state_dict(), new.state_dict()
    for key in old_state:
        if not key.startswith("1."):
            assert torch.equal(old_state[key], new_state[key]), key  # kept layers keep names and weights
    _, by_conv_name = factorize(model, where="re:[02]\\.conv")
    assert [r.name for r in by_conv_name.replaced] == ["0", "2"]


def test_input_model_is_not_modified():
    model = nn.Sequential(ConvNormAct(3, 8, 5), nn.Conv2d(8, 8, 7, padding=3))
    before = copy.deepcopy(model.state_dict())
    text = repr(model)
    new, _ = factorize(model, "asymmetric")
    assert repr(model) == text and new is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_activations_and_norm_follow_the_original_unit():
    linear_unit = nn.Sequential(ConvNormAct(8, 8, 5, act=None))  # conv-bn, as the last conv of a residual unit
    new, _ = factorize(linear_unit)
    first, last = new[0][0], new[0][1]
    assert isinstance(first.activation, nn.ReLU) and last.activation is None  # linear output kept linear
    preact = nn.Sequential(ConvNormAct(8, 8, 5, preact=True, act="gelu"))
    new, _ = factorize(preact)
    assert [[k for k, _ in u.named_children()] for u in new[0]] == [["bn", "act", "conv"]] * 2
    assert all(isinstance(u.activation, nn.GELU) for u in new[0])
    # a bare convolution is linear: ReLU between the factors only (Sec. 3.1), none after the last
    new, _ = factorize(nn.Sequential(nn.Conv2d(8, 8, 5, padding=2)))
    assert [type(u.activation).__name__ for u in new[0]] == ["ReLU", "NoneType"]
    assert all(u.normalization is None and u.conv.bias is not None for u in new[0])


def test_not_applicable_returns_unchanged_model_and_empty_report():
    model = nn.Sequential(ConvNormAct(3, 8, 3), ConvNormAct(8, 8, 3))
    new, record = factorize(model, "stack3x3")
    report = compare(model, new, record, input_size=(3, 16, 16))
    assert not report.changed and report.replaced == ()
    assert report.before == report.after
    assert "model unchanged" in report.notes[0]
    assert new is not model and repr(new) == repr(model)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), new.state_dict().values()))
    # even kernels cannot be covered by stacked 3x3 exactly: skipped with a reason, not an error
    _, even = factorize(nn.Sequential(nn.Conv2d(3, 4, 6)), "stack3x3")
    assert not even.changed and any("6x6" in n for n in even.notes)


@pytest.mark.parametrize("where", ["re:(", "re:[a-", "layer[1", "conv(1|2)", ""])
def test_malformed_where_is_an_error_naming_it(where):
    with pytest.raises(ValueError, match="malformed where pattern") as info:
        factorize(nn.Sequential(nn.Conv2d(3, 4, 5)), where=where)
    assert repr(where) in str(info.value)


@pytest.mark.parametrize(("kwargs", "word"), [({"style": "5x5"}, "style"), ({"min_kernel": 1}, "min_kernel")])
def test_bad_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        factorize(nn.Sequential(nn.Conv2d(3, 4, 5)), **kwargs)


def test_report_table_and_dict():
    model = nn.Sequential(nn.Conv2d(C, C, 5, padding=2, bias=False))
    report = compare(model, *factorize(model), input_size=(C, 8, 8))
    data = report.to_dict()
    assert data["transform"] == "factorize" and data["changed"] is True
    assert data["before"]["params"] == 25 * C * C and data["after"]["params"] == 18 * C * C
    assert data["replaced"][0]["old"].startswith("Conv2d 32->32 5x5")
    text = str(report)
    assert "18,432" in text and "25,600" in text and "(unchanged)" in text  # 18 * 32^2, 25 * 32^2


@pytest.mark.parametrize(("c_in", "c_out"), [(16, 32), (32, 16)])
def test_inner_width_is_the_smaller_side_so_widening_layers_get_cheaper(c_in, c_out):
    model = nn.Sequential(nn.Conv2d(c_in, c_out, 5, padding=2, bias=False))
    new, _ = factorize(model)
    small = min(c_in, c_out)
    assert [m.weight.shape[:2] for m in new.modules() if isinstance(m, nn.Conv2d)] == [(small, c_in), (c_out, small)]
    assert conv_weights(new) == 9 * c_in * small + 9 * small * c_out < 25 * c_in * c_out
