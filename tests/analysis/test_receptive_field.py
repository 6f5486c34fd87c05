"""Receptive field: closed forms, the TF-slim VGG-16 value, and the empirical (gradient) field."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis import analyze, empirical_receptive_field


def vgg16_features() -> nn.Sequential:
    """VGG-16 configuration D (Simonyan & Zisserman 2015, Table 1): 13 3x3 convs, 5 2x2 max pools."""
    layers: list[nn.Module] = []
    c = 3
    for width, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
            c = width
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


def test_vgg16_pool5_matches_tf_slim_table():
    # google-research/receptive_field README: vgg_16 = 212 (same layer layout as this stack)
    rf = analyze(vgg16_features(), (3, 224, 224)).layer("").rf.to_dict()
    assert rf["size"] == [212, 212] and rf["jump"] == [32, 32]


def test_closed_form_stack_with_stride_dilation_padding():
    net = nn.Sequential(nn.Conv2d(1, 1, 5, stride=2, padding=2), nn.Conv2d(1, 1, 3, dilation=2, padding=2),
                        nn.MaxPool2d(3, stride=2, padding=1))
    rep = analyze(net, (1, 64, 64))
    # size += (k-1)*d*jump: 1 + 4*1*1 = 5; + 2*2*2 = 13; + 2*1*2 = 17. jump 2, 2, 4.
    # start += ((k-1)*d/2 - p)*jump: (2-2)*1 = 0; (2-2)*2 = 0; (1-1)*2 = 0
    assert [rep.layer(n).rf.size[0] for n in ("0", "1", "2")] == [5, 13, 17]
    assert [rep.layer(n).rf.jump[0] for n in ("0", "1", "2")] == [2, 2, 4]
    assert rep.layer("2").rf.start == (0, 0)
    valid = nn.Conv2d(1, 1, 3)  # no padding: the first unit is centred on pixel 1
    assert analyze(valid, (1, 8, 8)).layer("").rf.start == (1, 1)


def test_asymmetric_kernels_per_axis():
    rep = analyze(nn.Sequential(nn.Conv2d(1, 1, (1, 7), padding=(0, 3)), nn.Conv2d(1, 1, (7, 1), padding=(3, 0))),
                  (1, 20, 20))
    assert rep.layer("0").rf.size == (1, 7)
    assert rep.layer("1").rf.size == (7, 7)


class Inception(nn.Module):
    """Branches of different fields meet in torch.cat: the output takes the largest."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(4, 2, 1)
        self.b3 = nn.Conv2d(4, 2, 3, padding=1)
        self.b5 = nn.Conv2d(4, 2, 5, padding=2)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(10, 10, 3, padding=1)  # after Inception(): 2 + 2 + 2 + 4 channels
        self.b = nn.Conv2d(10, 10, 3, padding=1)

    def forward(self, x):
        return x + self.b(torch.relu(self.a(x)))


def test_branches_and_residual_adds():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), Inception(), Residual())
    rep = analyze(net, (3, 64, 64))
    assert rep.layer("1").rf.size == (3 + 4 * 2,) * 2  # the 5x5 branch at jump 2
    assert rep.layer("2").rf.size == (11 + 2 * 2 * 2,) * 2
    assert rep.layer("2").rf.jump == (2, 2)


@pytest.mark.parametrize("make", [
    lambda: nn.Sequential(nn.Conv2d(3, 4, 7, 2, 3), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(4, 4, 3, padding=2,
                                                                                                 dilation=2)),
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), Inception(), Residual()),
    lambda: nn.Sequential(nn.Conv2d(3, 4, (1, 5), padding=(0, 2)), nn.Conv2d(4, 4, (3, 1), stride=(2, 1)),
                          nn.AvgPool2d(2)),
])
def test_analytic_field_equals_empirical_gradient_extent(make):
    net = make()
    size = (3, 96, 96)
    rf = analyze(net, size).layer("").rf
    assert tuple(int(v) for v in rf.size) == empirical_receptive_field(net, size)


@pytest.mark.parametrize("name", [n for n in ("resnet20", "resnet56") if n in cnnlab.list_models()])
def test_zoo_cifar_resnet_field_equals_empirical(name):
    model = cnnlab.create_model(name)
    last = model.stage_names[-1]
    rf = analyze(model).layer(last).rf
    side = int(max(rf.size)) + 19 // 4 * 4  # larger than the field, so the centre unit is not clipped
    assert analyze(model, (3, side, side)).layer(last).rf == rf  # the field does not depend on the input size
    assert tuple(int(v) for v in rf.size) == empirical_receptive_field(model, (3, side, side), output=last)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ("resnet18", "googlenet", "inception_v3", "squeezenet1_0")
                                  if n in cnnlab.list_models()])
def test_zoo_imagenet_field_equals_empirical(name):
    model = cnnlab.create_model(name).eval()  # eval: batch norm on a 1x1 map with batch 1 cannot train
    last = model.stage_names[-1]
    rf = analyze(model, cnnlab.model_card(name).input_size).layer(last).rf
    size = int(max(rf.size)) + 64
    measured = empirical_receptive_field(model, (3, size, size), output=last)
    assert tuple(int(v) for v in rf.size) == measured


# google-research/receptive_field README (TF-slim end points; docs/references.md): the zoo follows the same
# layer layouts for these, so the analytic field at the last stage must match exactly.
TF_SLIM_FIELDS = {"alexnet": 195, "vgg16": 212, "inception_v3": 1311, "inception_v4": 2071,
                  "inception_resnet_v2": 3039}


@pytest.mark.parametrize("name", [n for n in TF_SLIM_FIELDS if n in cnnlab.list_models()])
def test_zoo_fields_match_tf_slim_table(name):
    model = cnnlab.create_model(name)
    rf = analyze(name).layer(model.stage_names[-1]).rf
    assert rf.size == (TF_SLIM_FIELDS[name],) * 2


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as TF-slim resnet_v1) -> 1x1, plus a (subsampling) shortcut."""

    def __init__(self, c: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, c, 3, stride, 1), nn.ReLU(),
                                  nn.Conv2d(c, c, 1))
        self.shortcut = nn.MaxPool2d(1, stride) if stride > 1 else nn.Identity()

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


def test_tf_slim_resnet_v1_50_layout_gives_483():
    # TF-slim resnet_v1_50: units (3, 4, 6, 3), stride 2 in the LAST unit of blocks 1-3 (the torchvision
    # layout strides the first unit and gives 427); the table says 483. Widths do not change the field.
    layers: list[nn.Module] = [nn.Conv2d(3, 4, 7, 2, 3), nn.MaxPool2d(3, 2, 1)]
    for units, last_stride in ((3, 2), (4, 2), (6, 2), (3, 1)):
        layers += [Bottleneck(4, 1) for _ in range(units - 1)] + [Bottleneck(4, last_stride)]
    assert analyze(nn.Sequential(*layers), (3, 224, 224)).layer("").rf.size == (483, 483)


def test_fields_are_typed_values_kept_beside_the_tensors():
    from dataclasses import FrozenInstanceError

    from cnnlab.analysis.receptive_field import UNKNOWN, FieldTracker, TensorField, input_field

    x = torch.empty(1, 3, 9, 9, device="meta")
    tracker = FieldTracker(x, 2)
    assert tracker.get(x) == TensorField(input_field(2), True) and not vars(x)  # nothing written on the tensor
    y = torch.empty(1, 5, 4, 4, device="meta")
    w = torch.empty(5, 3, 3, 3, device="meta")
    tracker.propagate("conv", (x, w, None, [2, 2], [0, 0], [1, 1], False, [0, 0], 1), {}, y)
    assert tracker.get(y) == TensorField(cnnlab.analysis.ReceptiveField((3, 3), (2, 2), (1, 1)), True)
    flat = torch.empty(1, 80, device="meta")
    tracker.propagate("free", (y, [1, 80]), {}, flat)
    # the flattened output sees every position
    assert tracker.get(flat) == TensorField(cnnlab.analysis.ReceptiveField((9, 9), (8, 8), (4, 4)), False)
    moved = torch.empty(1, 4, 4, 5, device="meta")  # channels last
    tracker.propagate("layout", (y, [0, 2, 3, 1]), {}, moved)
    assert tracker.get(moved) is UNKNOWN and UNKNOWN.field is None
    with pytest.raises(FrozenInstanceError):
        tracker.get(y).on_grid = False  # type: ignore[misc]


def test_a_permute_leaves_the_field_unknown_not_wrong():
    class ChannelsLast(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.after = nn.Conv2d(4, 4, 3)

        def forward(self, x):
            return self.after(self.conv(x).permute(0, 2, 3, 1).permute(0, 3, 1, 2))

    rep = analyze(ChannelsLast(), (3, 9, 9))
    assert rep.layer("conv").rf.size == (3, 3) and rep.layer("after").rf is None and rep.layer("").rf is None


def test_a_vector_input_has_no_field_and_every_format_renders():
    shared = nn.Linear(4, 4)  # called twice: the second call used to compare the sizes of empty fields
    rep = analyze(nn.Sequential(shared, nn.ReLU(), shared), (4,))
    assert all(r.rf is None for r in rep.layers) and rep.macs == 2 * 4 * 4
    assert "receptive field" not in rep.to_table() and rep.to_dict()["layers"][0]["rf"] is None
    assert "(no receptive field: the model has no spatial input)" in rep.to_html()
