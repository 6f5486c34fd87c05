"""compare's receptive field: that of the last feature map, through multi-branch modules (the union of the
branches), checked against the input-gradient probe, which does not use cnnlab.analysis."""

from __future__ import annotations

import torch
from torch import nn

import cnnlab
from cnnlab.analysis import analyze
from cnnlab.design import compare
from cnnlab.design.report import feature_receptive_field


class Branches(nn.Module):
    """A 5x5 and a 1x1 branch, concatenated: the 1x1 runs last but the map sees the 5x5's field."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.wide = nn.Conv2d(channels, channels, 5, padding=2)
        self.narrow = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.wide(x), self.narrow(x)], 1)


def test_the_field_of_a_multi_branch_module_is_the_union_of_its_branches(probe):
    features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), Branches(4))
    model = nn.Sequential(*features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    rows, cols = probe(features, (3, 15, 15))
    assert (len(rows), len(cols)) == (3 + 4, 3 + 4)  # not the last branch's 3 + 0
    assert feature_receptive_field(analyze(model, (3, 15, 15))) == (7, 7)
    assert compare(model, model, input_size=(3, 15, 15)).before.receptive_field == (7, 7)


def test_inception_networks_report_their_last_module_and_nothing_past_the_maps():
    report = analyze("googlenet")
    assert feature_receptive_field(report) == (715, 715)
    assert report.layer("inception5b").rf.size == (715, 715)  # the last module, all four branches
    flat = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 4, 3))  # nothing ends the maps: the whole network
    assert feature_receptive_field(analyze(flat, (3, 9, 9))) == (5, 5)


def test_a_model_left_in_train_mode_is_measured_at_inference_cost():
    # create_model returns a module in train mode: its aux heads would run and count, and its field end at aux1
    model = cnnlab.create_model("cifar_inception", aux=True)
    assert model.training
    report = compare(model, model, input_size=(3, 32, 32))
    eval_cost = analyze(model, (3, 32, 32), training=False)
    assert report.before.macs == eval_cost.macs < analyze(model, (3, 32, 32), training=True).macs
    assert report.before.receptive_field == feature_receptive_field(eval_cost)
    assert model.training  # the model's own mode is left alone
