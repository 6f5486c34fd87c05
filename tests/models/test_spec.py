"""The spec dialect: every zoo model declared as a spec round-trips through JSON and builds the same network;
loading refuses anything that is not a known spec type or kind; the smallest input comes from the spec."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import cnnlab
from _helpers import n_params
from cnnlab.models import model_spec
from cnnlab.models.build import build
from cnnlab.models.spec import (
    ConvDefaults,
    HeadSpec,
    HighwayConvSpec,
    LayerSpec,
    NetworkSpec,
    ResidualSpec,
    avg_pool,
    branch,
    conv,
    from_json,
    max_pool,
    min_input_size,
    multi_branch,
    stage,
    to_json,
)
from cnnlab.registry import MODELS

WITH_SPEC = [entry.name for entry in MODELS if entry.spec is not None]
# building these twice on meta takes seconds each (thousands of modules; test_zoo.py measures the same set)
DEEP = frozenset({"resnet1202", "preact_resnet1001", "resnet152", "resnetv2_101", "resnetv2_152", "resnetv2_200",
                  "preact_resnet164", "inception_resnet_v2"})


def spec_params():
    return [pytest.param(name, marks=pytest.mark.slow if name in DEEP else ()) for name in WITH_SPEC]


def layout(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(value.shape)) for key, value in model.state_dict().items()]


@pytest.mark.parametrize("name", spec_params())
def test_spec_round_trips_through_json_and_builds_the_same_network(name):
    spec = model_spec(name)
    text = to_json(spec)
    again = from_json(text)
    assert again == spec
    assert to_json(again) == text
    with torch.device("meta"):
        direct, rebuilt = cnnlab.create_model(name), build(again)
    assert n_params(rebuilt) == n_params(direct) == cnnlab.model_card(name).reference.params
    assert layout(rebuilt) == layout(direct)
    assert rebuilt.min_input_size == direct.min_input_size


@pytest.mark.parametrize("name", WITH_SPEC)
def test_card_min_input_size_is_the_spec_s(name):
    assert cnnlab.model_card(name).min_input_size == min_input_size(model_spec(name))


def test_every_zoo_model_is_a_spec():
    assert [entry.name for entry in MODELS if entry.spec is None] == []


def test_model_spec_passes_options_and_refuses_code_built_models(monkeypatch):
    spec = model_spec(WITH_SPEC[0], num_classes=7, in_channels=1)
    assert (spec.num_classes, spec.in_channels) == (7, 1)
    # a network registered by code alone (a user's): no spec to give
    monkeypatch.setitem(MODELS._entries, "code_built", dataclasses.replace(MODELS.get("resnet20"), spec=None))
    with pytest.raises(ValueError, match="not declared as a spec"):
        model_spec("code_built")


TINY = NetworkSpec("tiny", (
    stage("conv1", conv(8, 3, 2)),
    stage("mixed", multi_branch(conv(4, 1), (conv(2, 1), conv(4, (1, 3)), conv(4, (3, 1))),
                                (avg_pool(3, 1, 1, count_include_pad=False), conv(4, 1)))),
    stage("res", multi_branch(conv(4, 1), (conv(4, 1), conv(4, 3)), residual=True, scale=0.2), repeat=2),
    stage("pool", max_pool(3, 2, ceil_mode=True)),
    stage("layer", ResidualSpec("bottleneck", 16, 2, preact=True, stride_in_1x1=True), layout="sequential"),
    stage("norm", LayerSpec("norm_act")),
), num_classes=5, init="he")


def test_a_hand_written_spec_builds_runs_and_round_trips():
    model = build(from_json(to_json(TINY)))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert model.mixed.out_channels == 12 and model.res[0].out_channels == 12
    assert isinstance(model.layer, torch.nn.Sequential) and len(model.layer) == 1  # "sequential": even for one unit
    assert [k for k in model.state_dict() if k.startswith("mixed.branch1.1")] == [
        "mixed.branch1.1.conv.weight", "mixed.branch1.1.bn.weight", "mixed.branch1.1.bn.bias",
        "mixed.branch1.1.bn.running_mean", "mixed.branch1.1.bn.running_var", "mixed.branch1.1.bn.num_batches_tracked"]


# the kinds the lab nets added: a conv with a pool before its BN, stacked and asymmetric convs, a sequence of
# layers as one unit, a residual module with a projection shortcut, highway layers, a global max-pool head
LAB = NetworkSpec("lab", (
    stage("conv", conv(8, 2, padding=0, pool=2, options=ConvDefaults(act="gelu", norm_momentum=0.4))),
    stage("factored", LayerSpec("conv_stack", 8, 5, 2), branch(LayerSpec("conv_asymmetric", 8, 3), conv(8, 1))),
    stage("res", multi_branch(conv(4, 1), (max_pool(3, 1, 1), conv(6, 3)), residual=True, projection=True)),
    stage("highway", HighwayConvSpec(3, -2.0), repeat=2),
), HeadSpec(global_pool="max", bias=False, scale=0.5), num_classes=3, init="he_fan_in", train_norm_scale=False)


def test_the_lab_kinds_build_run_and_round_trip():
    assert from_json(to_json(LAB)) == LAB
    model = build(from_json(to_json(LAB)))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    assert [n for n, _ in model.conv.named_children()] == ["conv", "pool", "bn", "act"]
    assert isinstance(model.conv.act, torch.nn.GELU) and model.conv.bn.momentum == 0.4
    assert type(model.factored[0]).__name__ == "StackedConv" and model.factored[0][0].conv.stride == (2, 2)
    assert [m.kernel_size for m in model.factored[1].modules() if isinstance(m, torch.nn.Conv2d)] == [
        (3, 1), (1, 3), (1, 1)]
    assert model.res.out_channels == 10 and model.res.shortcut.conv.kernel_size == (1, 1)  # 8 -> 10: projected
    assert all(torch.all(layer.gate.bias == -2.0) for layer in model.highway)  # the init left the gates alone
    assert all(not m.weight.requires_grad for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert model.head.fc.bias is None and isinstance(model.head.pool, torch.nn.AdaptiveMaxPool2d)
    assert min_input_size(LAB) == 3  # the 2x2 conv and its pool: 3 -> 2 -> 1; the stride-2 stack: 1 -> 1


@pytest.mark.parametrize("spec", [TINY, LAB], ids=["tiny", "lab"])
def test_min_input_size_is_the_smallest_size_that_runs(spec):
    smallest = min_input_size(spec)
    model = build(spec).eval()
    model.min_input_size = (1, 1)  # let the layers themselves decide
    model(torch.randn(1, 3, smallest, smallest))
    with pytest.raises(RuntimeError):
        model(torch.randn(1, 3, smallest - 1, smallest - 1))


@pytest.mark.parametrize("data, match", [
    ({"type": "network", "name": "x", "stages": [{"type": "stage", "name": "s",
                                                  "units": [{"type": "layer", "kind": "eval"}]}]},
     "unknown layer kind 'eval'"),
    ({"type": "os.system", "name": "x"}, "unknown spec type 'os.system'"),
    ({"type": "network", "name": "x", "stages": [], "init": "torch.hub:load"}, "unknown init kind"),
    ({"type": "network", "name": "x", "stages": [], "head": {"type": "head", "kind": "module:Head"}},
     "unknown head kind"),
    ({"type": "layer", "kind": "conv", "out_channels": 3, "__reduce__": 1}, "unknown fields"),
])
def test_loading_refuses_unknown_types_kinds_and_fields(data, match):
    with pytest.raises(ValueError, match=match):
        from_json(json.dumps(data))


def test_from_json_wants_a_network():
    with pytest.raises(ValueError, match="expected a network spec"):
        from_json(json.dumps({"type": "layer", "kind": "conv", "out_channels": 3}))


def test_merged_stage_puts_a_conv_s_layers_beside_the_pool():
    spec = NetworkSpec("stem", (stage("stem", conv(8, 7, 2), max_pool(3, 2, 1), names=("", "pool"), layout="merged"),))
    assert [name for name, _ in build(spec).stem.named_children()] == ["conv", "bn", "act", "pool"]


def test_layer_checks_its_numbers():
    with pytest.raises(ValueError, match="out_channels must be a positive int"):
        LayerSpec("conv", 0)
    with pytest.raises(ValueError, match="a branch is a non-empty tuple"):
        branch()
    with pytest.raises(ValueError, match="shortcut must be one of"):
        ResidualSpec("basic", 8, shortcut="D")
    with pytest.raises(ValueError, match="pool applies to conv layers only"):
        LayerSpec("conv_stack", 8, 5, pool=2)
    with pytest.raises(ValueError, match="conv_asymmetric pads to keep the size"):
        LayerSpec("conv_asymmetric", 8, 3, padding=0)
    with pytest.raises(ValueError, match="projection applies to residual modules only"):
        multi_branch(conv(4, 1), projection=True)
    with pytest.raises(ValueError, match="unknown activation kind 'os.system'"):
        ConvDefaults(act="os.system")
