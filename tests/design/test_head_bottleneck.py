"""gap_head (NIN / GoogLeNet global average pooling) and add_bottleneck (1x1 reductions), counts in closed form."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from _helpers import n_params
from cnnlab.blocks import ConvNormAct, ReducedConv
from cnnlab.design import add_bottleneck, compare, gap_head
from cnnlab.models import create_model

# VGG-16 (Simonyan & Zisserman 2015, Table 1, configuration D): 512 maps of 7x7 at 224, FC-4096, FC-4096, FC-1000
FC6 = 512 * 7 * 7 * 4096 + 4096
FC7 = 4096 * 4096 + 4096
FC8 = 4096 * 1000 + 1000
GAP_FC = 512 * 1000 + 1000


def test_gap_head_on_vgg16_removes_fc6_and_reports_it():
    with torch.device("meta"):  # 138M parameters: structure and counts only
        vgg = create_model("vgg16")
    new, record = gap_head(vgg)
    report = compare(vgg, new, record)
    assert FC6 == 102_764_544
    # one row for the replaced head (issue 14: one row per module the driver replaced, no longer one per layer)
    (row,) = report.replaced
    assert row.name == "head" and row.params_before == FC6 + FC7 + FC8 and row.params_after == GAP_FC
    assert "fc 25088->4096 + fc 4096->4096 + fc 4096->1000" in row.old and "[fc 512->1000]" in row.new
    assert report.before.params - report.after.params == FC6 + FC7 + FC8 - GAP_FC
    assert n_params(vgg) - n_params(new) == FC6 + FC7 + FC8 - GAP_FC
    # MACs of the head: the weights of its linear layers (the pooling is an "other" op, not a MAC)
    assert report.before.macs - report.after.macs == (FC6 - 4096) + (FC7 - 4096) + (FC8 - 1000) - (GAP_FC - 1000)
    # the features are untouched: same receptive field (212 for VGG-16, google-research/receptive_field)
    assert report.before.receptive_field == report.after.receptive_field == (212, 212)
    assert f"{FC6 + FC7 + FC8:,} -> {GAP_FC:,}" in str(report)
    assert list(new.head._modules) == ["pool", "flatten", "drop7", "fc"]
    assert new.head.pool.output_size == 1 and new.head.fc.in_features == 512
    assert vgg.head.fc6.in_features == 25088  # input untouched


def test_gap_head_runs_and_keeps_the_classifier_name():
    model = nn.Sequential(ConvNormAct(3, 8, 3), nn.MaxPool2d(2),
                          nn.Sequential(nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.2),
                                        nn.Linear(32, 5)))
    new, record = gap_head(model, input_size=(3, 8, 8))
    report = compare(model, new, record, input_size=(3, 8, 8))
    assert [r.name for r in report.replaced] == ["2"]
    assert report.after.params == report.before.params - (128 * 32 + 32) - (32 * 5 + 5) + (8 * 5 + 5)
    assert [k for k, _ in new[2].named_children()] == ["gap", "0", "3", "4"]
    x = torch.randn(2, 3, 8, 8)
    assert new.eval()(x).shape == model.eval()(x).shape == (2, 5)
    # a global-pooling head now: any input size runs, and the transform does not apply a second time
    assert new(torch.randn(1, 3, 20, 20)).shape == (1, 5)
    again, second = gap_head(new, input_size=(3, 8, 8))
    assert not second.changed and "already" in second.notes[0]


def test_gap_head_not_applicable():
    for model in (create_model("resnet20"), nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())):
        new, report = gap_head(model, input_size=(3, 32, 32))
        assert not report.changed and report.replaced == () and "model unchanged" in report.notes[0]
        assert repr(new) == repr(model) and new is not model


def test_bottleneck_closed_form():
    c_in, c_out, k, r, h = 64, 128, 3, 4, 8
    model = nn.Sequential(ConvNormAct(3, c_in, 3), ConvNormAct(c_in, c_out, k))
    new, record = add_bottleneck(model, reduction=r)
    report = compare(model, new, record, input_size=(3, h, h))
    reduced = c_in // r
    # the stem has 3 input channels: nothing to reduce (a note, not an error); the 64 -> 128 conv is reduced
    assert [x.name for x in report.replaced] == ["1"]
    assert any(n.startswith("0: skipped") for n in report.notes)
    conv_weights = [m.weight.numel() for m in new[1].modules() if isinstance(m, nn.Conv2d)]
    assert conv_weights == [c_in * reduced, reduced * c_out * k * k]
    assert report.before.macs - report.after.macs == h * h * (c_in * c_out * k * k - c_in * reduced
                                                               - reduced * c_out * k * k)
    assert report.before.receptive_field == report.after.receptive_field == (5, 5)  # a 1x1 adds no field
    assert str(new[1]) == str(ReducedConv(c_in, c_out, reduced, k))  # exactly the block
    assert isinstance(new[1].reduce.activation, nn.ReLU) and isinstance(new[1].conv.activation, nn.ReLU)
    x = torch.randn(1, 3, h, h)
    assert new.eval()(x).shape == model.eval()(x).shape


def test_bottleneck_where_strides_and_errors():
    model = nn.Sequential(nn.Conv2d(16, 16, 5, stride=2, padding=2), nn.ReLU(), nn.Conv2d(16, 32, 3, padding="same"))
    original = copy.deepcopy(model.state_dict())
    new, record = add_bottleneck(model, 2, where="re:[02]")
    assert [x.name for x in record.replaced] == ["0", "2"]
    # bare convolutions are linear: ReLU after the 1x1 only, bias kept on both
    assert new[0].reduce.activation is not None and new[0].conv.activation is None and new[0].conv.conv.bias is not None
    x = torch.randn(1, 16, 9, 9)
    assert new(x).shape == model(x).shape == (1, 32, 5, 5)
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())
    _, none = add_bottleneck(model, 2, where="nothing*")
    assert not none.changed and "model unchanged" in none.notes[0]
    with pytest.raises(ValueError, match=r"malformed where pattern 're:\('"):
        add_bottleneck(model, where="re:(")
    with pytest.raises(ValueError, match="reduction"):
        add_bottleneck(model, reduction=1)
