"""cnnlab's experiment networks (cifar_convnet, cifar_inception, preact_resnet20..56): every count by closed form,
the studied option's structure, aux output, residual scaling. test_zoo.py adds the generic checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import conv_weights, count_macs, meta_model, n_params
from cnnlab.blocks.residual import PreActBasicBlock, ZeroPadShortcut
from cnnlab.models import ModelOutput, create_model, model_card
from cnnlab.models.labnets import INCEPTION_TABLE, ResidualBranches, naive_inception, studied_conv

K = 10  # CIFAR-10 classes
SOURCE = "measured by cnnlab (no paper count: a CIFAR-scale network for cnnlab's experiments)"


def w(k: int, a: int, b: int) -> int:
    """A k-area conv from a to b channels with BN (no bias)."""
    return k * a * b + 2 * b


# ---------------------------------------------------------------------------------------------- cifar_convnet
# the studied C -> C layer: conv weights per C^2 and BN layers (5x5: one conv; 3x3: two; asymmetric: four)
STUDIED = {"5x5": (25, 1), "3x3": (18, 2), "3x3_linear": (18, 2), "asymmetric": (12, 4)}
GRIDS = (32, 16, 8)


def convnet_counts(conv: str = "5x5", head: str = "gap") -> tuple[int, int]:
    """Params and MACs of cifar_convnet at 32x32 with widths 32/64/128."""
    per_c2, bns = STUDIED[conv]
    params, macs, prev = w(9, 3, 32), 32 * 32 * 27 * 32, 32
    for c, g in zip((32, 64, 128), GRIDS):
        params += w(9, prev, c) + per_c2 * c * c + bns * 2 * c
        macs += g * g * (9 * prev * c + per_c2 * c * c)
        prev = c
    if head == "fc":  # pool3: 4x4x128 = 2048 -> fc6 512 -> fc 10
        return params + 2048 * 512 + 512 + 512 * K + K, macs + 2048 * 512 + 512 * K
    return params + 128 * K + K, macs + 128 * K


def test_studied_layer_weights_are_25_18_12_c_squared():
    for i, c in enumerate((32, 64, 128), start=1):
        got = {conv: conv_weights(getattr(meta_model("cifar_convnet", conv=conv), f"stage{i}").conv)
               for conv in STUDIED}
        assert got == {"5x5": 25 * c * c, "3x3": 18 * c * c, "3x3_linear": 18 * c * c, "asymmetric": 12 * c * c}
    assert 1 - 18 / 25 == pytest.approx(0.28) and 1 - 12 / 18 == pytest.approx(1 / 3)  # Sec. 3.1: -28%, 3.2: -33%


def test_factorized_layers_structure():
    kernels = lambda m: [c.kernel_size for c in m.modules() if isinstance(c, nn.Conv2d)]  # noqa: E731
    acts = lambda m: sum(isinstance(c, nn.ReLU) for c in m.modules())  # noqa: E731
    stacked, linear, asym = (meta_model("cifar_convnet", conv=c).stage2.conv for c in ("3x3", "3x3_linear",
                                                                                        "asymmetric"))
    assert kernels(stacked) == kernels(linear) == [(3, 3), (3, 3)]
    assert acts(stacked) == 2 and acts(linear) == 1 and not hasattr(linear[0], "act")  # no ReLU between
    assert sum(isinstance(m, nn.BatchNorm2d) for m in linear.modules()) == 2  # BN kept
    assert stacked.state_dict().keys() == linear.state_dict().keys()  # checkpoints map one to one
    assert kernels(asym) == [(3, 1), (1, 3), (3, 1), (1, 3)] and acts(asym) == 4


@pytest.mark.parametrize("conv", list(STUDIED))
@pytest.mark.parametrize("head", ["gap", "fc"])
def test_convnet_counts_and_forward(conv, head):
    params, macs = convnet_counts(conv, head)
    model = meta_model("cifar_convnet", conv=conv, head=head)
    assert (n_params(model), count_macs(model, 32)) == (params, macs)
    torch.manual_seed(0)
    out = create_model("cifar_convnet", conv=conv, head=head).eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, K) and torch.isfinite(out).all()


def test_fc_head_is_vgg_style_and_needs_8x8():
    gap, fc = meta_model("cifar_convnet"), meta_model("cifar_convnet", head="fc")
    assert n_params(fc) - n_params(gap) == (2048 * 512 + 512 + 512 * K + K) - (128 * K + K)
    assert fc.stage_names[-1] == "pool3" and fc.head.fc6.in_features == 128 * 4 * 4
    assert fc.head.drop6.p == 0.5 and fc.min_input_size == (8, 8) and gap.min_input_size == (4, 4)
    with pytest.raises(ValueError, match="8x8"):
        fc.eval()(torch.empty(1, 3, 7, 7, device="meta"))
    fc._check_input = lambda x: None  # the bound is tight: one pixel less empties pool3's output
    with pytest.raises(RuntimeError):
        fc(torch.empty(1, 3, 7, 7, device="meta"))


def test_widths_option():
    model = meta_model("cifar_convnet", widths=[16, 32, 64, 64])  # JSON gives lists
    assert model.stage_names == ["stem", "stage1", "pool1", "stage2", "pool2", "stage3", "pool3", "stage4"]
    assert model.head.fc.in_features == 64 and model.min_input_size == (8, 8)


# ---------------------------------------------------------------------------------------------- cifar_inception
TABLE1 = {"3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64), "4a": (192, 96, 208, 16, 48, 64),
          "4b": (160, 112, 224, 24, 64, 64)}  # GoogLeNet Table 1: #1x1, #3x3r, #3x3, #5x5r, #5x5, pool proj
ROWS = {k: tuple(v // 2 for v in row) for k, row in TABLE1.items()}  # halved
GRID = {"3a": 16, "3b": 16, "4a": 8, "4b": 8}


def inception_counts(reduce: bool = True, aux: bool = False, residual: bool = False, **_) -> tuple[int, int]:
    """Params and MACs (eval mode: no aux) of cifar_inception at 32x32."""
    params, macs, c = w(9, 3, 64), 32 * 32 * 27 * 64, 64
    for name, (b1, r3, b3, r5, b5, pp) in ROWS.items():
        weights = c * b1 + c * pp + (c * r3 + 9 * r3 * b3 + c * r5 + 25 * r5 * b5 if reduce else
                                     9 * c * b3 + 25 * c * b5)
        params += weights + 2 * (b1 + b3 + b5 + pp) + (2 * (r3 + r5) if reduce else 0)
        d = b1 + b3 + b5 + pp
        if residual:  # expansion D*D + D, projection C*D + BN where the depth changes
            weights += d * d + (c * d if c != d else 0)
            params += d * d + d + (c * d + 2 * d if c != d else 0)
        macs += GRID[name] ** 2 * weights
        c = d
    if aux:  # on 4a (256 ch): 1x1 conv 64 + BN, 2x2x64 -> 512 -> 10
        params += w(1, 256, 64) + 2 * 2 * 64 * 512 + 512 + 512 * K + K
    return params + 256 * K + K, macs + 256 * K


def test_inception_default_closed_form_and_budget():
    params, macs = inception_counts()
    assert model_card("cifar_inception").reference.params == params and params == 347_250
    assert model_card("cifar_inception").reference.macs == macs <= 50_000_000  # ~50M MACs or less at 32x32
    naive = inception_counts(reduce=False)
    assert naive[1] / macs > 2.9  # Sec. 4: without reductions the 3x3 / 5x5 convolutions blow up the cost


@pytest.mark.parametrize("name", ["cifar_convnet", "cifar_inception"])
def test_every_variant_builds_and_matches_its_card_and_closed_form(name):
    card = model_card(name)
    closed = convnet_counts if name == "cifar_convnet" else inception_counts
    assert (card.reference.params, card.reference.macs) == closed()
    assert card.reference.source == SOURCE and {"cifar", "experiment"} <= set(card.tags)
    assert card.input_size == (3, 32, 32) and card.num_classes == K
    for variant, counts in card.variants.items():
        model = meta_model(name, **dict(counts.options))
        got = (n_params(model), count_macs(model, 32))
        assert got == (counts.params, counts.macs) == closed(**dict(counts.options)), variant
        assert counts.source == SOURCE


def test_no_reduce_has_no_1x1_before_3x3_and_5x5():
    model = meta_model("cifar_inception", reduce=False)
    for name in ("inception3a", "inception3b", "inception4a", "inception4b"):
        module = getattr(model, name)
        for branch, k in ((module.branch1, 3), (module.branch2, 5)):
            convs = [m for m in branch.modules() if isinstance(m, nn.Conv2d)]
            assert [(c.kernel_size, c.in_channels) for c in convs] == [((k, k), module.in_channels)]
        assert module.out_channels == getattr(meta_model("cifar_inception"), name).out_channels


def test_aux_head_in_train_mode():
    torch.manual_seed(0)
    model = create_model("cifar_inception", aux=True)
    out = model.train()(torch.randn(2, 3, 32, 32))
    assert isinstance(out, ModelOutput) and out.logits.shape == (2, K)
    assert len(out.aux_logits) == 1 and out.aux_logits[0].shape == (2, K)
    assert list(model.aux_heads) == ["inception4a"] and model.aux_heads.inception4a.dropout.p == 0.7
    assert isinstance(model.eval()(torch.randn(1, 3, 32, 32)), torch.Tensor)
    assert model.eval()(torch.randn(1, 3, 1, 1)).shape == (1, K)  # main path: any size
    with pytest.raises(ValueError, match="17x17"):  # train mode: the 5x5/3 aux pool needs a 5x5 map at 4a
        model.train()(torch.randn(2, 3, 16, 16))
    assert model.train()(torch.randn(2, 3, 17, 17)).aux_logits[0].shape == (2, K)
    model.aux_min_input_size = None  # tight: one pixel less fails inside the aux head
    with pytest.raises(RuntimeError):
        model.train()(torch.randn(2, 3, 16, 16))
    model.reset_classifier(3)
    assert model.head.fc.out_features == model.aux_heads.inception4a.fc.out_features == 3


def test_residual_adds_only_expansions_and_shortcuts():
    plain, res = meta_model("cifar_inception").state_dict(), meta_model("cifar_inception", residual=True).state_dict()
    extra = set(res) - set(plain)
    assert set(plain) <= set(res) and all(plain[k].shape == res[k].shape for k in plain)
    assert {k.split(".")[1] for k in extra} == {"expand", "shortcut"}
    model = meta_model("cifar_inception", residual=True)
    assert isinstance(model.inception4b.shortcut, nn.Identity)  # 256 -> 256
    for name in ("inception3a", "inception3b", "inception4a"):  # 64 -> 128, 128 -> 240, 240 -> 256: projections
        assert getattr(model, name).shortcut.conv.kernel_size == (1, 1)
    assert n_params(model) - n_params(meta_model("cifar_inception")) == 307_536


def test_residual_scale_zero_is_the_shortcut_path():
    torch.manual_seed(0)
    model = create_model("cifar_inception", residual=True, residual_scale=0.0).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model.pool1(model.stem(x))
        for name in ("inception3a", "inception3b", "pool2", "inception4a", "inception4b"):
            module = getattr(model, name)
            y = torch.relu(module.shortcut(y)) if hasattr(module, "shortcut") else module(y)
        assert torch.equal(model(x), model.head(y))
        scaled = create_model("cifar_inception", residual=True, residual_scale=0.2).eval()
        scaled.load_state_dict(model.state_dict())
        assert not torch.allclose(scaled(x), model(x))


def test_gradients_reach_every_parameter_with_aux_and_residual():
    torch.manual_seed(0)
    model = create_model("cifar_inception", aux=True, residual=True, residual_scale=0.3).train()
    out = model(torch.randn(2, 3, 17, 17))
    (out.logits.sum() + out.aux_logits[0].sum()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_module_functions_build_the_network_s_modules():
    # studied_conv, naive_inception and ResidualBranches give a stage's module alone, as built in the network
    w = INCEPTION_TABLE[0][1]
    with torch.device("meta"):
        unit = ResidualBranches(naive_inception(64, w), 0.2)
        studied = studied_conv(32, "asymmetric")
    model = meta_model("cifar_inception", reduce=False, residual=True, residual_scale=0.2)
    assert str(unit) == str(model.inception3a) and (unit.scale, unit.out_channels) == (0.2, w.out_channels)
    assert str(studied) == str(meta_model("cifar_convnet", conv="asymmetric").stage1.conv)


@pytest.mark.parametrize(("name", "options", "match"), [
    ("cifar_convnet", {"conv": "7x7"}, "conv must be one of"),
    ("cifar_convnet", {"head": "none"}, "head must be one of"),
    ("cifar_convnet", {"widths": []}, "widths"),
    ("cifar_convnet", {"widths": [32, 0]}, "widths"),
    ("cifar_inception", {"residual_scale": 0.2}, "residual=True"),
    ("cifar_inception", {"residual": True, "residual_scale": -1.0}, "residual_scale"),
    ("cifar_inception", {"reduce": "no"}, "reduce"),
])
def test_bad_options_raise(name, options, match):
    with pytest.raises(ValueError, match=match):
        meta_model(name, **options)
    with pytest.raises(TypeError):
        meta_model(name, depth=3)


# ---------------------------------------------------------------------------------------------- preact_resnet20..56
def preact_counts(n: int) -> tuple[int, int]:
    """He et al. 2016b units (BN-ReLU-conv x 2) on resnet{6n+2}: stem conv without BN, final BN, option A."""
    params, macs = 27 * 16, 32 * 32 * 27 * 16
    for cin, cout, g in ((16, 16, 32), (16, 32, 16), (32, 64, 8)):
        for j in range(n):
            c = cin if j == 0 else cout
            params += 2 * c + 9 * c * cout + 2 * cout + 9 * cout * cout
            macs += g * g * (9 * c * cout + 9 * cout * cout)
    return params + 2 * 64 + 64 * K + K, macs + 64 * K


@pytest.mark.parametrize("n", [3, 5, 7, 9])
def test_preact_resnets(n):
    name = f"preact_resnet{6 * n + 2}"
    card, model = model_card(name), meta_model(name)
    assert (card.reference.params, card.reference.macs) == preact_counts(n) == (n_params(model),
                                                                               count_macs(model, 32))
    projections = 16 * 32 + 32 * 64  # option B: two 1x1 projections, no BN (pre-activation)
    b = card.variants["option_B"]
    assert (b.params, b.macs) == (preact_counts(n)[0] + projections, preact_counts(n)[1] + 16 * 16 * 16 * 32 +
                                  8 * 8 * 32 * 64)
    assert card.reference.source == SOURCE and "experiment" in card.tags and "1603.05027" in card.paper
    assert model.stage_names == ["stem", "layer1", "layer2", "layer3", "norm"]
    assert all(isinstance(u, PreActBasicBlock) for s in ("layer1", "layer2", "layer3") for u in getattr(model, s))
    assert isinstance(model.layer2[0].shortcut, ZeroPadShortcut) and not hasattr(model.stem, "bn")
