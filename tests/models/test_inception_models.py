"""Inception-v3, Inception-v4, Inception-ResNet-v1/v2: counts vs cards, input sizes, aux heads, conversions."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import count_macs, meta_model, n_params, randomize_batchnorm
from cnnlab.models import ModelOutput, create_model, model_card

# name -> (smallest input without aux, smallest with aux or None when the model has no aux head)
SMALLEST = {
    "inception_v3": (75, 299),
    "inception_v4": (75, None),
    "inception_resnet_v1": (75, None),
    "inception_resnet_v2": (75, None),
}
NAMES = list(SMALLEST)


def no_aux(name: str) -> dict:
    """Options that build ``name`` without auxiliary heads (models without any take no aux_logits option)."""
    return {"aux_logits": False} if SMALLEST[name][1] is not None else {}


def meta_input(size: int, batch: int = 2) -> torch.Tensor:
    return torch.empty(batch, 3, size, size, device="meta")


@pytest.mark.parametrize("name", NAMES)
def test_default_matches_card(name: str) -> None:
    card = model_card(name)
    model = meta_model(name)
    assert n_params(model) == card.reference.params
    assert count_macs(model, card.input_size[-1]) == card.reference.macs
    assert model.min_input_size == (card.min_input_size, card.min_input_size)


@pytest.mark.parametrize(("name", "variant"), [(n, v) for n in NAMES for v in model_card(n).variants])
def test_variants_match_card(name: str, variant: str) -> None:
    counts = model_card(name).variants[variant]
    model = meta_model(name, **counts.options)
    assert n_params(model) == counts.params
    if counts.macs is not None:
        assert count_macs(model, model_card(name).input_size[-1]) == counts.macs


# (name, aux): v4 and the Inception-ResNets take 3-5 s of meta-device forwards on the 2-core machine, and
# tests/models/test_zoo.py already checks their (only) configuration: slow here
SMALLEST_CASES = [pytest.param(n, aux, marks=() if n == "inception_v3" else pytest.mark.slow)
                  for n in NAMES for aux in (False, True) if SMALLEST[n][aux] is not None]


@pytest.mark.parametrize(("name", "aux"), SMALLEST_CASES)
def test_smallest_input_is_tight_and_named(name: str, aux: bool) -> None:
    main, with_aux = SMALLEST[name]
    train = with_aux if aux else main  # train mode runs the aux head too
    model = meta_model(name, num_classes=5, **({"aux_logits": aux} if with_aux else {}))
    assert model.min_input_size == (main, main)
    assert model.eval()(meta_input(main)).shape == (2, 5)  # eval mode: the main path only
    with pytest.raises(ValueError, match=f"smallest valid size is {main}x{main}"):
        model.eval()(meta_input(main - 1))
    out = model.train()(meta_input(train))
    assert (out.logits if aux else out).shape == (2, 5)
    with pytest.raises(ValueError, match=f"smallest valid size is {train}x{train}"):
        model.train()(meta_input(train - 1))
    model.min_input_size, model.aux_min_input_size = (1, 1), None  # without the guards one pixel less fails inside
    with pytest.raises(RuntimeError):
        model.eval()(meta_input(main - 1))
    if train != main:
        with pytest.raises(RuntimeError):
            model.train()(meta_input(train - 1))


def test_inception_v3_with_aux_head_evaluates_below_the_aux_minimum() -> None:
    # torchvision's Inception3 (aux_logits=True) evaluates 224x224 inputs; only training needs 299 for the aux head
    model = meta_model("inception_v3", num_classes=5)
    assert model.has_aux and isinstance(model.eval()(meta_input(224)), torch.Tensor)
    with pytest.raises(ValueError, match="auxiliary classifier.*smallest valid size is 299x299.*down to 75x75"):
        model.train()(meta_input(224))
    card = model_card("inception_v3")
    assert card.min_input_size == SMALLEST["inception_v3"][0] and "299x299" in card.differences


@pytest.mark.parametrize("name", NAMES)
def test_forward_on_cpu_at_smallest_input(name: str) -> None:
    torch.manual_seed(0)
    size = SMALLEST[name][0]
    model = create_model(name, num_classes=3, **no_aux(name)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, size, size))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in NAMES if SMALLEST[n][1] is not None])
def test_train_mode_returns_model_output_eval_a_tensor(name: str) -> None:
    model = meta_model(name, num_classes=6)
    size = SMALLEST[name][1]
    out = model.train()(meta_input(size))
    assert isinstance(out, ModelOutput) and out.logits.shape == (2, 6)
    assert [a.shape for a in out.aux_logits] == [(2, 6)] * len(model.aux_heads)
    assert isinstance(model.eval()(meta_input(size)), torch.Tensor)


@pytest.mark.parametrize("name", [n for n in NAMES if SMALLEST[n][1] is not None])
def test_aux_logits_false_removes_aux_heads(name: str) -> None:
    model = meta_model(name, aux_logits=False)
    assert model.aux_heads is None and not any("aux" in k for k in model.state_dict())
    assert isinstance(model.train()(meta_input(SMALLEST[name][0])), torch.Tensor)


@pytest.mark.parametrize("name", NAMES)
def test_num_classes_changes_only_classifiers(name: str) -> None:
    a, b = meta_model(name, num_classes=1000).state_dict(), meta_model(name, num_classes=10).state_dict()
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k].shape != b[k].shape}
    classifiers = {k for k in a if k.startswith("head.fc.") or (k.startswith("aux_heads.") and ".fc." in k)}
    assert changed == classifiers and {"head.fc.weight", "head.fc.bias"} <= changed


@pytest.mark.parametrize("name", NAMES)
def test_builds_on_meta_without_materializing(name: str) -> None:
    model = meta_model(name)
    assert all(t.is_meta for t in [*model.parameters(), *model.buffers()])


def test_inception_v3_stages_and_bn_eps() -> None:
    model = meta_model("inception_v3")
    names = [n for n, _ in model.named_children()]
    assert names[:7] == ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                         "Conv2d_4a_3x3", "maxpool2"]
    assert [n for n in names if n.startswith("Mixed")] == [
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a",
        "Mixed_7b", "Mixed_7c"]
    assert {m.eps for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
    assert list(model.aux_heads) == ["Mixed_6e"]


def test_inception_v4_stages_follow_fig_9() -> None:
    names = [n for n, _ in meta_model("inception_v4").named_children()]
    assert names == ["stem", *(f"Mixed_5{s}" for s in "bcde"), "Mixed_6a", *(f"Mixed_6{s}" for s in "bcdefgh"),
                     "Mixed_7a", *(f"Mixed_7{s}" for s in "bcd"), "head"]


def w(k: int, a: int, b: int) -> int:
    """A BN conv with kernel area k from a to b channels."""
    return k * a * b + 2 * b


def test_inception_resnet_v1_count_is_the_paper_closed_form() -> None:
    # Figs. 14 (stem), 10 (A, x5 on 256), 7 (Reduction-A 192/192/256/384), 11 (B, x10 on 896),
    # 12 (Reduction-B), 13 (C, x5 on 1792); expansions are biased 1x1 convs without BN
    stem = w(9, 3, 32) + w(9, 32, 32) + w(9, 32, 64) + w(1, 64, 80) + w(9, 80, 192) + w(9, 192, 256)
    unit_a = 3 * w(1, 256, 32) + 3 * w(9, 32, 32) + 96 * 256 + 256
    red_a = w(9, 256, 384) + w(1, 256, 192) + w(9, 192, 192) + w(9, 192, 256)
    unit_b = 2 * w(1, 896, 128) + 2 * w(7, 128, 128) + 256 * 896 + 896
    red_b = 3 * w(1, 896, 256) + w(9, 256, 384) + 3 * w(9, 256, 256)
    unit_c = 2 * w(1, 1792, 192) + 2 * w(3, 192, 192) + 384 * 1792 + 1792
    expected = stem + 5 * unit_a + red_a + 10 * unit_b + red_b + 5 * unit_c + 1792 * 1000 + 1000
    assert n_params(meta_model("inception_resnet_v1")) == expected == model_card("inception_resnet_v1").reference.params


def test_inception_resnet_scales_option() -> None:
    model = meta_model("inception_resnet_v2", scales=(0.3, 0.2, 0.1))
    assert {u.scale for u in model.repeat} == {0.3} and {u.scale for u in model.repeat_2} == {0.1}
    assert model.block8.scale == 1.0 and isinstance(model.block8.act, nn.Identity)
    default = meta_model("inception_resnet_v1")
    assert [default.repeat[0].scale, default.repeat_1[0].scale, default.repeat_2[0].scale] == [0.17, 0.10, 0.20]
    with pytest.raises(ValueError, match="scales"):
        meta_model("inception_resnet_v1", scales=(0.1, 0.1))
    with pytest.raises(ValueError, match="scale"):
        meta_model("inception_resnet_v1", scales=(0.1, -1.0, 0.1))


def test_inception_resnet_v2_stages_are_timm_names() -> None:
    names = [n for n, _ in meta_model("inception_resnet_v2").named_children()]
    assert names == ["conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "maxpool_5a",
                     "mixed_5b", "repeat", "mixed_6a", "repeat_1", "mixed_7a", "repeat_2", "block8", "conv2d_7b",
                     "head"]


# ---------------------------------------------------------------------------------------------- references


def _compare(ref: nn.Module, ours: nn.Module, size: int) -> None:
    assert n_params(ours) == n_params(ref)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        r, o = ref.eval()(x), ours.eval()(x)
    assert (r - o).abs().max() < 1e-5


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("aux", [True, False])
def test_torchvision_inception_v3_conversion(aux: bool) -> None:
    tv = pytest.importorskip("torchvision")
    from cnnlab.models import from_torchvision

    torch.manual_seed(0)
    # transform_input=False: cnnlab has no built-in re-normalization; init_weights=False: PyTorch's default
    # init (keeps activations moderate) and no FutureWarning
    ref = tv.models.inception_v3(weights=None, aux_logits=aux, transform_input=False, init_weights=False)
    randomize_batchnorm(ref)
    ours = from_torchvision("inception_v3", ref.state_dict(), aux_logits=aux, transform_input=False)
    assert n_params(ours) == (27_161_264 if aux else 23_834_568)
    _compare(ref, ours, 299)
    if aux:  # train mode (batch statistics, dropout off): the aux logits agree too
        ref.dropout.p = ours.head.dropout.p = 0.0
        x = torch.randn(2, 3, 299, 299)
        with torch.no_grad():
            r, o = ref.train()(x), ours.train()(x)
        assert (r.logits - o.logits).abs().max() < 1e-5
        assert (r.aux_logits - o.aux_logits[0]).abs().max() < 1e-5


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("name", ["inception_v4", "inception_resnet_v2"])
def test_timm_conversion(name: str) -> None:
    timm = pytest.importorskip("timm")
    from cnnlab.models import from_timm

    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False)
    randomize_batchnorm(ref)
    ours = from_timm(name, ref.state_dict())
    assert n_params(ours) == model_card(name).reference.params
    _compare(ref, ours, 299)
