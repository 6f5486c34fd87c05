"""Every registered model, whichever family file registered it: counts vs its card, meta-device builds,
classifier-only num_classes changes, CPU forward, the smallest input size, and complete cards.

Parametrized over ``cnnlab.list_models()``, so a new family gets these checks by registering.
"""

from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnlab
from _helpers import meta_model, n_params
from cnnlab.models.network import Network

ALL = cnnlab.list_models()

# CPU forward at min_input_size (random init + eval forward, batch 2), measured with pytest --durations in two
# runs on the shared 2-core machine (load 5-7; `python benchmarks/bench_zoo.py` repeats the measurement):
# the models below took < 3 s in both (resnet20 0.4 s ... plain110 2.7 s; highway 0.7-0.8 s). Slow: vgg* 2.0-6.6 s
# (init of fc6's 103M weights), resnet101/152 2.7-8.0 s, resnetv2_* 1.9-6.4 s, inception_v3 4.2-5.6 s,
# inception_v4 4.6 s, inception_resnet_v1/v2 2.6 / 7.6 s, preact_resnet110/164 1.8-4.4 / 3.4-3.6 s,
# preact_resnet1001 3.1-11.5 s, resnet1202 20.6-27.7 s. A model added later is slow until measured.
FAST_FORWARD = frozenset({
    "alexnet", "googlenet", "squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass",
    "resnet18", "resnet34", "resnet50",
    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
    "plain20", "plain32", "plain44", "plain56", "plain110",
    "highway19_cifar", "highway32_cifar",
    # cnnlab's experiment nets, measured the same way: 0.1-0.6 s
    "cifar_convnet", "cifar_inception", "preact_resnet20", "preact_resnet32", "preact_resnet44", "preact_resnet56",
    "fastcifar_vgg",  # 0.1 s
})
# a meta-device forward costs Python shape functions per op: 7-8 s for resnet1202 / preact_resnet1001
# (~5,000-6,000 modules) and 2.8-3.8 s for the MAC or min-size test of the others listed (load 5-7),
# so the tests that run one (or several builds) are slow for them
DEEP = frozenset({"resnet1202", "preact_resnet1001", "resnet152", "resnetv2_101", "resnetv2_152", "resnetv2_200",
                  "preact_resnet164", "inception_resnet_v2"})
# even building these two on meta takes 2.4 s idle, 7.7-9.0 s under load: their build-only tests are slow too
HUGE = frozenset({"resnet1202", "preact_resnet1001"})


def forward_params():
    return [pytest.param(name, marks=() if name in FAST_FORWARD else pytest.mark.slow) for name in ALL]


def build_params():
    return [pytest.param(name, marks=pytest.mark.slow if name in HUGE else ()) for name in ALL]


def meta_forward_params():
    return [pytest.param(name, marks=pytest.mark.slow if name in DEEP else ()) for name in ALL]


@cache
def default_meta_model(name: str) -> nn.Module:
    """The default configuration on the meta device, built once; tests only read it (and set eval mode)."""
    return meta_model(name)


def macs_on_meta(model: nn.Module, input_size: tuple[int, int, int]) -> int:
    """Convolution and matrix-multiply MACs of one eval-mode forward (FlopCounterMode counts 2 FLOPs per MAC)."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.empty(1, *input_size, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", ALL)
def test_card_is_complete(name):
    card = cnnlab.model_card(name)
    assert card.name == name
    assert card.paper and any(str(year) in card.paper for year in range(1989, 2030)), "paper needs its year"
    assert card.reference.source, "reference counts need a source"
    assert card.family, "family is empty"
    assert len(card.input_size) == 3 and all(isinstance(v, int) and v > 0 for v in card.input_size)
    assert isinstance(card.min_input_size, int) and 1 <= card.min_input_size <= min(card.input_size[1:])
    assert card.num_classes >= 2 and card.reference.params > 0


@pytest.mark.parametrize("name", build_params())
def test_params_match_card_built_on_meta(name):
    model = default_meta_model(name)
    # nothing is materialised: every parameter and buffer stays on the meta device
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert n_params(model) == cnnlab.model_card(name).reference.params


@pytest.mark.parametrize("name", meta_forward_params())
def test_variant_params_match_card(name):
    card = cnnlab.model_card(name)
    for variant, counts in card.variants.items():
        got = n_params(meta_model(name, **dict(counts.options)))
        assert got == counts.params, f"variant {variant!r} ({dict(counts.options)}): {got:,} != {counts.params:,}"


@pytest.mark.parametrize("name", meta_forward_params())
def test_macs_match_card(name):
    card = cnnlab.model_card(name)
    if card.reference.macs is None:
        pytest.skip(f"{name}: the card gives no MAC count")
    got = macs_on_meta(default_meta_model(name), card.input_size)
    # exact, like the parameter count: a card pins the exact count (a paper's rounded figure goes in its source)
    assert got == card.reference.macs, f"{got:,} MACs vs card {card.reference.macs:,}"


@pytest.mark.parametrize("name", meta_forward_params())
def test_num_classes_changes_only_the_classifiers(name):
    default = cnnlab.model_card(name).num_classes
    k = 13  # a width no architecture uses, so the modules producing it are the classifiers
    model = meta_model(name, num_classes=k)
    classifiers = {
        qual: m for qual, m in model.named_modules()
        if (isinstance(m, nn.Linear) and m.out_features == k) or (isinstance(m, nn.Conv2d) and m.out_channels == k)
    }
    assert "head.fc" in classifiers, f"the final classifier must be head.fc; found {sorted(classifiers)}"
    per_class = sum(m.weight[0].numel() + (m.bias is not None) for m in classifiers.values())
    assert n_params(default_meta_model(name)) - n_params(model) == per_class * (default - k)
    model.reset_classifier(7)
    assert n_params(model) == n_params(meta_model(name, num_classes=7))


@pytest.mark.parametrize("name", forward_params())
def test_forward_at_min_input_size_on_cpu(name):
    card = cnnlab.model_card(name)
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    size = card.min_input_size
    with torch.no_grad():
        out = model(torch.randn(2, card.input_size[0], size, size))
    assert out.shape == (2, card.num_classes) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", build_params())
def test_smaller_input_raises_naming_the_smallest_size(name):
    size = cnnlab.model_card(name).min_input_size
    model = default_meta_model(name).eval()
    channels = cnnlab.model_card(name).input_size[0]
    if size > 1:
        with pytest.raises(ValueError, match=f"{size}x{size}"):
            model(torch.empty(1, channels, size - 1, size - 1, device="meta"))
    with pytest.raises(ValueError, match=f"{size}x{size}"):
        model(torch.empty(1, channels, size + 8, size - 1 if size > 1 else 0, device="meta"))


def breaks_below(model: Network, channels: int, size: int) -> bool:
    """Whether one forward at ``size x size`` (batch 2, current mode) fails or empties a layer without the guard."""
    model._check_input = lambda x: None  # bypass the guard on this instance only to probe the layers below it
    empty: list[str] = []
    hooks = [m.register_forward_hook(
        lambda mod, args, out, qual=qual: empty.append(qual) if isinstance(out, torch.Tensor) and 0 in out.shape
        else None) for qual, m in model.named_modules()]
    try:
        model(torch.empty(2, channels, size, size, device="meta"))
    except RuntimeError:
        return True
    finally:
        for h in hooks:
            h.remove()
        del model._check_input
    return bool(empty)


@pytest.mark.parametrize("name", meta_forward_params())
def test_min_input_size_is_the_smallest_that_works(name):
    """The card's bound is tight in eval mode (the main path); where the model has aux heads, train mode is tight
    at the aux minimum the network declares (the card's bound when it declares none)."""
    card = cnnlab.model_card(name)
    size, channels = card.min_input_size, card.input_size[0]
    model = meta_model(name).eval()
    assert isinstance(model, Network), "zoo models are cnnlab Networks"
    model(torch.empty(2, channels, size, size, device="meta"))
    assert size == 1 or breaks_below(model, channels, size - 1), \
        f"{name} runs at {size - 1}x{size - 1} in eval mode: min_input_size={size} is not the smallest size"
    if not model.has_aux:
        return
    aux = max(size, *(model.aux_min_input_size or ()))  # train mode runs the main path too
    model.train()(torch.empty(2, channels, aux, aux, device="meta"))  # batch 2: train-mode BN needs > 1 value
    if aux > size:
        assert breaks_below(model.train(), channels, aux - 1), \
            f"{name} trains at {aux - 1}x{aux - 1}: aux_min_input_size={aux} is not the smallest size"
        assert f"{aux}x{aux}" in card.differences, f"the card's differences should name the train-mode minimum {aux}"


@pytest.mark.parametrize("name", forward_params())
def test_backward_reaches_every_parameter(name):
    """timm's check: one train-mode forward / backward at the smallest size that trains (aux heads included, so
    their minimum counts) gives every parameter a gradient; a parameter without one is dead weight."""
    card = cnnlab.model_card(name)
    torch.manual_seed(0)
    model = cnnlab.create_model(name).train()
    size = max([card.min_input_size, *(getattr(model, "aux_min_input_size", None) or ())])
    out = model(torch.randn(2, card.input_size[0], size, size))
    logits = [out.logits, *out.aux_logits] if isinstance(out, cnnlab.models.ModelOutput) else [out]
    sum(t.square().mean() for t in logits).backward()
    # a parameter frozen on purpose (requires_grad=False: airbench's BN scales) must stay without one
    missing = [qual for qual, p in model.named_parameters() if (p.grad is None) == p.requires_grad]
    assert not missing, f"{name}: gradient wrong for {missing[:5]} ({len(missing)} parameters)"
