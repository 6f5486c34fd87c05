"""State-dict converters: the rules on the model cards, errors on small fake data, and one reference test per
torchvision / timm converter on a card (random reference weights, convert, outputs and parameter counts equal)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import cnnlab
import cnnlab.models  # noqa: F401  (registers every family with its converters)
from cnnlab.models import convert
from cnnlab.models.convert import (
    convert_state_dict,
    converters,
    load_reference,
    register_converter,
    rename_keys,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard, UnknownModelError


@pytest.fixture
def zoo(monkeypatch):
    """The registry with its entries copied, so that what a test registers or adds is gone after it."""
    monkeypatch.setattr(MODELS, "_entries", dict(MODELS._entries))
    return MODELS


def _card(name: str, **converters: Converter) -> ModelCard:
    return ModelCard(name=name, paper="A. Author (2000). A paper.", input_size=(3, 8, 8),
                     reference=Counts(params=4, macs=None, source="computed"), converters=converters)


def test_the_zoo_declares_its_converters_on_its_cards():
    assert sorted(n for _, n in converters("timm")) == ["inception_resnet_v2", "inception_v4", "resnetv2_101",
                                                        "resnetv2_152", "resnetv2_50"]
    assert len(converters("torchvision")) == 18 and len(converters()) == 23
    card = cnnlab.model_card("googlenet")
    assert converters()[("torchvision", "googlenet")].rules == card.converters["torchvision"].rules != ()
    assert card.converters["torchvision"].options == {"layout": "torchvision"}
    assert card.to_dict()["converts_from"] == {"torchvision": "googlenet"}
    assert cnnlab.model_card("squeezenet1_0_bypass").converters == {}


def test_reference_name_defaults_to_cnnlabs_name(zoo):
    zoo.register(_card("tiny", torchvision=Converter(reference_name="tv_tiny"), timm=Converter()), nn.Identity)
    assert converters()[("torchvision", "tiny")].reference_name == "tv_tiny"
    assert converters()[("timm", "tiny")].reference_name == "tiny"
    assert set(converters("timm")) == {key for key in converters() if key[0] == "timm"}
    assert zoo.get("tiny").card.to_dict()["converts_from"] == {"torchvision": "tv_tiny", "timm": "tiny"}


def test_unknown_source_raises(zoo):
    with pytest.raises(ValueError, match="source must be one of"):
        register_converter("keras", "vgg16", rules=())
    with pytest.raises(ValueError, match="source must be one of"):
        zoo.register(_card("tiny", keras=Converter()), nn.Identity)
    assert "tiny" not in zoo and "keras" not in zoo.get("vgg16").card.converters


def test_register_converter_adds_to_the_card_once(zoo):
    before = zoo.get("vgg16").card
    with pytest.raises(ValueError, match="a torchvision converter for 'vgg16' is already registered"):
        register_converter("torchvision", "vgg16")
    assert zoo.get("vgg16").card is before
    register_converter("timm", ["vgg11", "vgg16"], rules=[(r"^a\.", "b.")], reference_name="vgg16_tv")
    assert zoo.get("vgg16").card.converters["timm"] == Converter(((r"^a\.", "b."),), reference_name="vgg16_tv")
    assert zoo.get("vgg16").card.converters["torchvision"] is before.converters["torchvision"]
    with pytest.raises(ValueError, match="a timm converter for 'vgg11' is already registered"):
        register_converter("timm", ["vgg13", "vgg11"])
    with pytest.raises(UnknownModelError, match="unknown model 'no_such_net'"):
        register_converter("timm", "no_such_net")


def test_no_converter_lists_the_models_that_have_one(zoo):
    zoo._entries.clear()
    for name, card_converters in (("b_net", {"torchvision": Converter()}), ("a_net", {"torchvision": Converter()}),
                                  ("c_net", {})):
        zoo.register(_card(name, **card_converters), nn.Identity)
    with pytest.raises(ValueError, match="no torchvision converter for 'c_net'; models with one: a_net, b_net$"):
        convert_state_dict("torchvision", "c_net", {})
    with pytest.raises(ValueError, match="no torchvision converter for 'd_net'; models with one: a_net, b_net$"):
        convert_state_dict("torchvision", "d_net", {})  # not registered at all: the same ValueError
    with pytest.raises(ValueError, match="no timm converter for 'a_net'; models with one: $"):
        convert_state_dict("timm", "a_net", {})


def test_rename_rules_first_match_wins_and_unmatched_keys_stay():
    sd = {"features.0.weight": torch.zeros(1), "features.10.weight": torch.ones(1), "fc.bias": torch.zeros(2)}
    out = rename_keys(sd, ((r"^features\.0\.", "conv1."), (r"^features\.(\d+)\.", r"layer\1."),
                           (r"^features\.", "never.")))
    assert list(out) == ["conv1.weight", "layer10.weight", "fc.bias"]
    assert out["layer10.weight"] is sd["features.10.weight"]


def test_ambiguous_rules_raise():
    with pytest.raises(ValueError, match="two source tensors map to 'x.weight'"):
        rename_keys({"a.weight": torch.zeros(1), "b.weight": torch.zeros(1)}, ((r"^[ab]\.", "x."),))


def test_fn_runs_after_the_rules(zoo):
    zoo.register(_card("tiny", timm=Converter(((r"^old\.", "new."),), fn=lambda sd: {k: v * 2 for k, v in sd.items()})),
                 nn.Identity)
    out = convert_state_dict("timm", "tiny", {"old.weight": torch.ones(2)})
    assert list(out) == ["new.weight"] and torch.equal(out["new.weight"], torch.full((2,), 2.0))


def test_mismatching_state_dict_names_missing_and_unexpected_keys(zoo):
    register_converter("timm", "squeezenet1_1", rules=((r"^renamed\.", "fire2."),))
    sd = dict(cnnlab.create_model("squeezenet1_1").state_dict())
    sd["renamed.squeeze.conv.weight"] = sd.pop("fire2.squeeze.conv.weight")  # maps back: loads fine
    assert isinstance(load_reference("timm", "squeezenet1_1", sd), nn.Module)
    sd["bogus.weight"] = sd.pop("fire3.expand3x3.conv.bias")
    with pytest.raises(ValueError, match=r"^timm state dict does not match cnnlab 'squeezenet1_1'.*"
                                         r"missing \['fire3.expand3x3.conv.bias'\].*unexpected \['bogus.weight'\]"):
        load_reference("timm", "squeezenet1_1", sd)


def test_num_classes_is_read_from_the_classifier(zoo):
    register_converter("timm", "alexnet", rules=())
    with torch.device("meta"):
        sd = cnnlab.create_model("alexnet", num_classes=10).state_dict()
    sd = {k: torch.zeros(v.shape) for k, v in sd.items()}
    assert load_reference("timm", "alexnet", sd).head.fc.out_features == 10


def test_ddp_state_dict_loads_without_its_module_prefix(zoo, caplog):
    register_converter("timm", "squeezenet1_1", rules=())
    model = cnnlab.create_model("squeezenet1_1", num_classes=7)
    ddp = {f"module.{k}": v for k, v in model.state_dict().items()}
    with caplog.at_level("INFO", logger="cnnlab.models.convert"):
        loaded = load_reference("timm", "squeezenet1_1", ddp)
    assert "DistributedDataParallel" in caplog.text
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_a_state_dict_without_aux_heads_says_aux_logits_false(zoo):
    # googlenet's default layout is the paper's: only the converter's options make a torchvision-layout dict load
    register_converter("timm", "googlenet", rules=(), options={"layout": "torchvision"})
    with torch.device("meta"):
        sd = cnnlab.create_model("googlenet", layout="torchvision", aux_logits=False).state_dict()
    sd = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in sd.items()}
    with pytest.raises(ValueError, match="no auxiliary-classifier weights .*: pass aux_logits=False"):
        load_reference("timm", "googlenet", sd)
    assert not load_reference("timm", "googlenet", sd, aux_logits=False).has_aux


def test_transform_input_is_torchvisions_rescaling_and_must_be_stated():
    x = torch.randn(2, 3, 5, 5)
    # torchvision's GoogLeNet._transform_input, written out per channel
    expected = torch.cat([x[:, 0:1] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5,
                          x[:, 1:2] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5,
                          x[:, 2:3] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5], 1)
    assert torch.allclose(convert.TorchvisionInputTransform()(x), expected)
    with pytest.raises(ValueError, match="pass transform_input=True for its weights"):
        cnnlab.models.from_torchvision("inception_v3", {})
    with pytest.raises(ValueError, match="transform_input applies to googlenet, inception_v3 only"):
        cnnlab.models.from_torchvision("resnet18", {}, transform_input=True)


def test_transform_input_runs_first_and_adds_no_weights():
    model = cnnlab.create_model("googlenet", layout="torchvision", aux_logits=False).eval()
    keys = list(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        plain = model(convert.TorchvisionInputTransform()(x))
        model.prepend_stage("transform_input", convert.TorchvisionInputTransform())
        assert torch.equal(model(x), plain)
    assert list(model.state_dict()) == keys and model.stage_names[0] == "transform_input"
    with pytest.raises(ValueError, match="already has a 'transform_input'"):
        model.prepend_stage("transform_input", nn.Identity())


@pytest.mark.parametrize("name, says", [("resnet50", "from_torchvision('resnet50', state_dict)"),
                                        ("inception_v3", "from_torchvision('inception_v3', state_dict, "
                                                         "transform_input=False)")])
def test_from_timm_names_the_converter_to_use(name, says):
    with pytest.raises(ValueError) as exc:
        cnnlab.models.from_timm(name, {})
    assert says in str(exc.value) and "\n" not in str(exc.value)


# ---- reference tests: every converter on a card against the library it converts from ----

def _build_reference(source: str, reference_name: str, options: dict) -> nn.Module:
    """The reference model with random weights; cnnlab options that the reference class also takes
    (torchvision's names, e.g. aux_logits) are passed on, so both sides have the same tensors."""
    if source == "torchvision":
        tv = pytest.importorskip("torchvision")
        assert reference_name in tv.models.list_models(), f"torchvision has no model {reference_name!r}"
        build = lambda **kw: tv.models.get_model(reference_name, weights=None, **kw)  # noqa: E731
    else:
        timm = pytest.importorskip("timm")
        assert reference_name in timm.list_models(), f"timm has no model {reference_name!r}"
        build = lambda **kw: timm.create_model(reference_name, pretrained=False, **kw)  # noqa: E731
    model = build()
    accepted = inspect.signature(type(model).__init__).parameters
    shared = {k: v for k, v in options.items() if k in accepted}
    return build(**shared) if shared else model


def _randomize_constants(model: nn.Module, generator: torch.Generator) -> None:
    # default inits leave biases, BN scale/shift and running statistics constant; a swapped or dropped one
    # would go unnoticed, so every constant tensor gets random values
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
            elif t.numel() == 1 or bool((t == t.flatten()[0]).all()):
                t.add_(torch.rand(t.shape, generator=generator) * 0.2 - 0.1)


# measured over 3 s each (venv-ref, load ~5): vgg* 5.4-9.0 s, resnet101/152 3.8/10.7 s, resnetv2_101/152
# 7.9/10.7 s, inception_v4 12.1 s, inception_resnet_v2 22.4 s; the others 0.4-2.8 s
REFERENCE_SLOW = frozenset({"vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
                            "resnet101", "resnet152", "resnetv2_101", "resnetv2_152", "inception_v4",
                            "inception_resnet_v2"})


@pytest.mark.reference
@pytest.mark.parametrize("source, name", [
    pytest.param(source, name, marks=pytest.mark.slow if name in REFERENCE_SLOW else (), id=f"{source}-{name}")
    for source, name in sorted(converters())])
def test_converter_matches_reference(source, name):
    conv = converters()[(source, name)]
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    reference = _build_reference(source, conv.reference_name, dict(conv.options or {})).eval()
    _randomize_constants(reference, generator)
    model = load_reference(source, name, reference.state_dict()).eval()
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(1, *cnnlab.model_card(name).input_size, generator=generator)
    with torch.no_grad():
        expected, got = reference(x), model(x)
    assert got.shape == expected.shape
    # 1e-5 for logits of order 1; random pre-activation nets reach logits ~100, where float32 summation order
    # alone moves the last digits (timm resnetv2_50: 5.3e-5 at 93), so the bound scales with the logits
    scale = max(1.0, expected.abs().max().item())
    assert (got - expected).abs().max().item() < 1e-5 * scale


@pytest.mark.reference
def test_every_torchvision_counterpart_has_a_converter():
    tv = pytest.importorskip("torchvision")
    have = {name for source, name in converters("torchvision")} | {
        conv.reference_name for conv in converters("torchvision").values()}
    shared = set(cnnlab.list_models()) & set(tv.models.list_models())
    assert shared - have == set(), "zoo models with a torchvision namesake but no torchvision converter"
