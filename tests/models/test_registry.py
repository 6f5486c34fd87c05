"""The model registry: strict names, suggestions for typos, pattern filters, card fields."""

import pytest
from torch import nn

import cnnlab
from cnnlab.models import create_model  # importing cnnlab.models registers the zoo into MODELS
from cnnlab.registry import MODELS, Converter, Counts, ModelCard, Registry, UnknownModelError


def card(name: str, **converters: Converter) -> ModelCard:
    return ModelCard(name=name, paper="A. Author (2000). A paper.", input_size=(3, 8, 8),
                     reference=Counts(params=4, macs=None, source="computed"), min_input_size=1,
                     converters=converters)


def builder(num_classes: int = 1000) -> nn.Module:
    return nn.Linear(1, num_classes)


def test_duplicate_registration_raises():
    registry = Registry()
    registry.register(card("tiny"), builder)
    with pytest.raises(ValueError, match="'tiny' is already registered"):
        registry.register(card("tiny"), builder)
    assert len(registry) == 1


def test_duplicate_of_a_zoo_name_raises_and_leaves_the_zoo_intact():
    before = MODELS.get("vgg16")
    with pytest.raises(ValueError, match="already registered"):
        MODELS.register(card("vgg16"), builder)
    assert MODELS.get("vgg16") is before


def test_a_card_carries_converters_for_known_sources_only():
    with pytest.raises(ValueError, match=r"converter source must be one of \('torchvision', 'timm'\), got 'keras'"):
        card("tiny", keras=Converter())
    registry = Registry()
    rules = ((r"^fc\.", "head.fc."),)
    registry.register(card("tiny", timm=Converter(rules)), builder)
    assert registry.get("tiny").card.converters == {"timm": Converter(rules)}


def test_add_converter_replaces_the_card_and_keeps_one_per_source():
    registry = Registry()
    registry.register(card("tiny"), builder)
    before = registry.get("tiny")
    registry.add_converter("tiny", "torchvision", Converter(options={"layout": "torchvision"}))
    after = registry.get("tiny")
    assert after.card.converters == {"torchvision": Converter(options={"layout": "torchvision"})}
    assert before.card.converters == {} and after.builder is before.builder
    assert after.card.to_dict()["converts_from"] == {"torchvision": "tiny"}
    with pytest.raises(ValueError, match="a torchvision converter for 'tiny' is already registered"):
        registry.add_converter("tiny", "torchvision", Converter())
    with pytest.raises(ValueError, match="source must be one of"):
        registry.add_converter("tiny", "keras", Converter())
    with pytest.raises(UnknownModelError):
        registry.add_converter("tinny", "timm", Converter())
    assert registry.get("tiny") is after


@pytest.mark.parametrize("typo, expected", [("vgg16bn", "vgg16_bn"), ("alexnett", "alexnet"),
                                            ("squeezenet1_2", "squeezenet1_1"), ("resnet5", "resnet50")])
def test_unknown_name_suggests_close_names(typo, expected):
    if expected not in cnnlab.list_models():
        pytest.skip(f"{expected} is not registered in this checkout")
    with pytest.raises(UnknownModelError) as info:
        cnnlab.create_model(typo)
    assert expected in str(info.value) and "did you mean" in str(info.value)
    with pytest.raises(KeyError):  # UnknownModelError is a KeyError, so dict-style handling works
        cnnlab.model_card(typo)


def test_unknown_name_without_close_match_says_how_to_list():
    with pytest.raises(UnknownModelError, match=r"list_models\(\)") as info:
        cnnlab.create_model("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_list_models_pattern_filter():
    names = cnnlab.list_models()
    assert len(names) == len(set(names)) == len(MODELS)
    assert cnnlab.list_models("vgg*") == ["vgg11", "vgg13", "vgg16", "vgg19",
                                          "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert cnnlab.list_models("vgg*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert cnnlab.list_models("squeezenet1_?") == ["squeezenet1_0", "squeezenet1_1"]
    assert cnnlab.list_models("no_such_model*") == []
    assert set(cnnlab.list_models("*")) == set(names)


def test_registry_names_in_registration_order():
    registry = Registry()
    for name in ("b", "a", "c"):
        registry.register(card(name), builder)
    assert registry.names() == ["b", "a", "c"] and registry.names("[ab]") == ["b", "a"]
    assert "a" in registry and "d" not in registry


def test_model_card_fields():
    c = cnnlab.model_card("alexnet")
    assert c.name == "alexnet" and c.family == "alexnet" and c.num_classes == 1000
    assert c.input_size == (3, 224, 224) and c.min_input_size == 63
    assert c.reference == Counts(params=61_100_840, macs=714_188_480, source=c.reference.source)
    d = c.to_dict()
    assert d["reference"]["params"] == 61_100_840 and d["input_size"] == [3, 224, 224]
    assert set(d) >= {"name", "paper", "family", "input_size", "num_classes", "follows", "differences",
                      "reference", "variants", "min_input_size", "tags", "converts_from"}
    assert d["converts_from"] == {"torchvision": "alexnet"}
    assert cnnlab.model_card("resnet20").to_dict()["converts_from"] == {}


def test_create_model_passes_num_classes_and_options():
    model = cnnlab.create_model("squeezenet1_1", num_classes=3, dropout=0.25)
    assert model.head.fc.out_channels == 3 and model.head.dropout.p == 0.25
    with pytest.raises(TypeError):  # an unknown option is an error, not silently ignored
        cnnlab.create_model("squeezenet1_1", no_such_option=1)


def _user_net(num_classes: int = 2, width: int = 4) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def test_create_model_calls_a_user_callable():
    spec = f"{__name__}:_user_net"
    assert create_model(spec)[-1].out_features == 2  # the callable's own default, no card to ask
    model = create_model(spec, num_classes=5, width=6)
    assert model[-1].out_features == 5 and model[0].out_channels == 6
    assert isinstance(create_model("torch.nn:Identity"), nn.Identity)
    with pytest.raises(TypeError, match=r"builtins:dict\(\) returned dict, not an nn.Module"):
        create_model("builtins:dict")
    with pytest.raises(ValueError, match="cannot import 'no_such_pkg.nets'"):
        create_model("no_such_pkg.nets:net")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        create_model("torch.nn:nope")
    with pytest.raises(ValueError, match="give package.module:callable"):
        create_model("torch.nn:")
