"""ResNet zoo: counts against the cards, docs/references.md and closed forms; structure; forward; converters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import meta_model, n_params
from cnnlab.blocks.residual import PreActBottleneck, ZeroPadShortcut
from cnnlab.models import create_model, list_models, model_card
from cnnlab.models.convert import from_timm, from_torchvision

NAMES = [n for n in list_models() if model_card(n).family == "resnet"]
DEEP = {"resnet1202", "preact_resnet1001", "resnet152", "resnetv2_152", "resnetv2_200"}  # meta forward > 3 s

# docs/references.md, typed here independently of the cards
MODELS_MD_PARAMS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "resnetv2_50": 25_549_352, "resnetv2_101": 44_541_480, "resnetv2_152": 60_185_128,
    "resnet20": 269_722, "resnet32": 464_154, "resnet44": 658_586, "resnet56": 853_018, "resnet110": 1_727_962,
    "resnet1202": 19_421_274, "preact_resnet164": 1_703_258, "preact_resnet1001": 10_327_706,
}
MODELS_MD_MACS = {  # exact where docs/references.md is exact, else (value, rounding step)
    "resnet18": 1_814_073_344, "resnet34": 3_663_761_408, "resnet50": 4_089_184_256, "resnet101": 7_801_405_440,
    "resnet152": 11_513_626_624, "resnetv2_50": 4_089_184_256,
    "resnet20": (40.55e6, 0.01e6), "resnet32": (68.86e6, 0.01e6), "resnet44": (97.17e6, 0.01e6),
    "resnet56": (125.49e6, 0.01e6), "resnet110": (252.89e6, 0.01e6), "resnet1202": (2.83e9, 0.01e9),
    "preact_resnet164": (244.5e6, 0.1e6), "preact_resnet1001": (1.488e9, 0.001e9),
}


def macs(model: nn.Module, size: int) -> int:
    """Conv + linear MACs of one forward on the meta device, counted by hooks from the output shapes."""
    total = 0

    def hook(m: nn.Module, inputs, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            total += out.shape[2] * out.shape[3] * m.out_channels * m.in_channels // m.groups * kh * kw
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.empty(1, 3, size, size, device="meta"))
    for h in handles:
        h.remove()
    return total


def cifar_params(n: int, classes: int = 10) -> int:
    """Closed form of He et al. 2015 Sec. 4.2 with option A: 3x3 stem, 3 stages of 2n 3x3 convs, BN, FC."""
    conv_bn = lambda cin, cout: 9 * cin * cout + 2 * cout  # noqa: E731
    total = conv_bn(3, 16)
    for cin, cout in ((16, 16), (16, 32), (32, 64)):
        total += conv_bn(cin, cout) + (2 * n - 1) * conv_bn(cout, cout)
    return total + 64 * classes + classes


def test_family_is_complete():
    expected = {f"resnet{d}" for d in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110, 1202)}
    expected |= {f"plain{d}" for d in (20, 32, 44, 56, 110)} | {f"resnetv2_{d}" for d in (50, 101, 152, 200)}
    expected |= {f"preact_resnet{d}" for d in (20, 32, 44, 56, 110, 164, 1001)}
    assert set(NAMES) == expected


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow if n in ("resnet1202", "preact_resnet1001")
                                               else ()) for n in NAMES])
def test_params_match_card_on_meta(name):
    model = meta_model(name)
    assert all(p.is_meta for p in model.parameters())
    card = model_card(name)
    assert n_params(model) == card.reference.params
    if name in MODELS_MD_PARAMS:
        assert card.reference.params == MODELS_MD_PARAMS[name]


@pytest.mark.parametrize("n", [3, 5, 7, 9, 18, 200])
def test_cifar_params_closed_form(n):
    assert model_card(f"resnet{6 * n + 2}").reference.params == cifar_params(n)
    if n <= 18:
        assert model_card(f"plain{6 * n + 2}").reference.params == cifar_params(n)


def test_preact_bottleneck_params_without_bn_match_the_paper():
    # He et al. 2016b: ResNet-164 1.7M, ResNet-1001 10.2M; docs/references.md: 1,679,034 / 10,178,490 without BN
    for name, without_bn in (("preact_resnet164", 1_679_034), ("preact_resnet1001", 10_178_490)):
        model = meta_model(name)
        bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
        assert n_params(model) - bn == without_bn


def _macs_params(names):
    return [pytest.param(name, marks=pytest.mark.slow if name in DEEP else ()) for name in names]


@pytest.mark.parametrize("name", _macs_params(NAMES))
def test_macs_match_card_and_models_md(name):
    card = model_card(name)
    assert macs(meta_model(name), card.input_size[1]) == card.reference.macs
    ref = MODELS_MD_MACS.get(name)
    if isinstance(ref, int):
        assert card.reference.macs == ref
    elif ref is not None:
        assert abs(card.reference.macs - ref[0]) <= ref[1] / 2


@pytest.mark.parametrize("name", _macs_params([n for n in NAMES if model_card(n).variants]))
def test_variants_match_their_counts(name):
    card = model_card(name)
    for variant in card.variants.values():
        model = meta_model(name, **variant.options)
        assert n_params(model) == variant.params
        assert macs(model, card.input_size[1]) == variant.macs


def test_paper_layout_macs_match_paper_table_1():
    # He et al. 2015 Table 1: 3.8 / 7.6 / 11.3 x 10^9 FLOPs (multiply-adds) for 50 / 101 / 152 layers
    for name, paper_g in (("resnet50", 3.8), ("resnet101", 7.6), ("resnet152", 11.3)):
        assert abs(model_card(name).variants["paper_layout"].macs / 1e9 - paper_g) < 0.1


@pytest.mark.parametrize("name,size", [("resnet20", 8), ("plain20", 8), ("preact_resnet164", 4),
                                       ("resnet18", 32), ("resnetv2_50", 16)])
def test_forward_shape_and_num_classes(name, size):
    model = create_model(name, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size + 3)).shape == (2, 7)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in sorted(DEEP)])
def test_deep_nets_forward_on_meta(name):
    model = meta_model(name, num_classes=5).eval()
    assert model(torch.empty(2, 3, 32, 32, device="meta")).shape == (2, 5)


@pytest.mark.parametrize("name", ["resnet20", "preact_resnet164", "resnet50", "resnetv2_50", "plain20"])
def test_num_classes_changes_only_the_classifier(name):
    a, b = meta_model(name, num_classes=10), meta_model(name, num_classes=100)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    changed = {k for k in sa if sa[k].shape != sb[k].shape}
    assert changed == {"head.fc.weight", "head.fc.bias"}
    features = a.head.fc.in_features
    assert n_params(b) - n_params(a) == 90 * features + 90


@pytest.mark.parametrize("name", ["resnet20", "resnet18", "resnetv2_50"])
def test_one_pixel_is_the_smallest_valid_input(name):
    model = meta_model(name).eval()  # eval: train-mode BN needs more than one value per channel, whatever the size
    assert model(torch.empty(1, 3, 1, 1, device="meta")).shape == (1, model_card(name).num_classes)
    with pytest.raises(ValueError, match="smallest valid size is 1x1"):
        model(torch.empty(1, 3, 0, 4, device="meta"))


def test_backward_reaches_every_parameter_and_the_input():
    model = create_model("resnet20").train()
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert x.grad.abs().sum() > 0


def test_stage_names_and_structure():
    r20 = meta_model("resnet20")
    assert r20.stage_names == ["stem", "layer1", "layer2", "layer3"]
    assert [len(getattr(r20, s)) for s in r20.stage_names[1:]] == [3, 3, 3]
    assert isinstance(r20.layer2[0].shortcut, ZeroPadShortcut) and isinstance(r20.layer2[1].shortcut, nn.Identity)
    assert all(u.shortcut is None for s in ("layer1", "layer2", "layer3") for u in getattr(meta_model("plain20"), s))
    r50 = meta_model("resnet50")
    assert r50.stage_names == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert isinstance(r50.stem.pool, nn.MaxPool2d) and r50.layer2[0].conv2.conv.stride == (2, 2)
    assert meta_model("resnet50", stride_in_1x1=True).layer2[0].conv1.conv.stride == (2, 2)
    p164 = meta_model("preact_resnet164")
    assert p164.stage_names[-1] == "norm" and isinstance(p164.layer1[0], PreActBottleneck)
    # resnet-1k-layers: the first unit of every stage projects (and shares its BN-ReLU); the others are identity
    for stage in ("layer1", "layer2", "layer3"):
        units = getattr(p164, stage)
        assert units[0].project_preact and all(isinstance(u.shortcut, nn.Identity) for u in units[1:])
    assert p164.layer2[0].conv1.conv.stride == (2, 2)


def test_he_init_and_zero_init_residual():
    model = create_model("resnet50")
    w = model.layer4[0].conv2.conv.weight  # 512 x 512 x 3 x 3: std sqrt(2 / (9 * 512))
    assert abs(w.std().item() / (2 / (9 * 512)) ** 0.5 - 1) < 0.02
    zero = create_model("resnet20", zero_init_residual=True)
    assert all(not u.conv2.bn.weight.any() for s in ("layer1", "layer2", "layer3") for u in getattr(zero, s))
    pre = create_model("preact_resnet110", zero_init_residual=True).eval()
    assert all(not u.conv2.conv.weight.any() for u in pre.layer3)


def test_bad_options():
    with pytest.raises(ValueError, match="stride_in_1x1 applies to bottleneck units only"):
        create_model("resnet20", stride_in_1x1=True)
    with pytest.raises(ValueError, match="shortcut must be one of"):
        create_model("resnet20", shortcut="D")
    with pytest.raises(TypeError):
        create_model("resnet20", widen_factor=2)


def _randomize_bn(model: nn.Module) -> None:
    """Random BN affine, running stats from a forward on random data (as a trained net: O(1) activations).

    Default stats (0, 1) and affine (1, 0) would hide a wrong BN mapping; uncalibrated stats let a random
    pre-activation net's outputs grow to ~100, where float32 summation order alone exceeds 1e-5.
    """
    g = torch.Generator().manual_seed(0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for m in bns:
            m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the stats exactly
        model.train()(torch.randn(8, 3, 64, 64, generator=g))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def _resnet_ref_params(names):
    # the 101/152-layer comparisons take over 10 s on the 2-core machine
    return [pytest.param(n, marks=pytest.mark.slow if n[-3:] in ("101", "152") else ()) for n in names]


@pytest.mark.reference
@pytest.mark.parametrize("name", _resnet_ref_params(["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]))
def test_torchvision_weights_give_the_same_outputs(name):
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    ref = getattr(tvm, name)(weights=None).eval()
    _randomize_bn(ref)
    ours = from_torchvision(name, ref.state_dict()).eval()
    assert n_params(ours) == n_params(ref)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() < 1e-5


@pytest.mark.reference
@pytest.mark.parametrize("name", _resnet_ref_params(["resnetv2_50", "resnetv2_101", "resnetv2_152"]))
def test_timm_weights_give_the_same_outputs(name):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False).eval()
    _randomize_bn(ref)
    with torch.no_grad():  # timm zero-initializes its classifier: give it weights so the test can fail
        ref.head.fc.weight.normal_(0, 0.01)
        ref.head.fc.bias.normal_(0, 0.01)
    ours = from_timm(name, ref.state_dict()).eval()
    assert n_params(ours) == n_params(ref)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max().item() < 1e-5
