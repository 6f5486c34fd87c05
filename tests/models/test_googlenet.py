"""GoogLeNet: counts against the card, smallest input, aux heads, options, torchvision conversion."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import count_macs, n_params, randomize_batchnorm
from cnnlab.models import ModelOutput, Network, create_model, model_card

NAME = "googlenet"


def meta_model(**options) -> Network:
    with torch.device("meta"):
        return create_model(NAME, **options)  # type: ignore[return-value]


def test_default_matches_card() -> None:
    card = model_card(NAME)
    model = meta_model()
    assert n_params(model) == card.reference.params == 13_378_280
    assert count_macs(model, card.input_size[-1]) == card.reference.macs
    assert model.min_input_size == (card.min_input_size, card.min_input_size)


@pytest.mark.parametrize("variant", list(model_card(NAME).variants))
def test_variants_match_card(variant: str) -> None:
    counts = model_card(NAME).variants[variant]
    model = meta_model(**counts.options)
    assert n_params(model) == counts.params
    if counts.macs is not None:
        assert count_macs(model, 224) == counts.macs


def test_paper_layout_has_no_batch_norm_and_true_5x5() -> None:
    model = meta_model()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.inception3a.branch2[1].conv.kernel_size == (5, 5)
    assert model.inception3a.branch2[1].conv.bias is not None
    tv = meta_model(layout="torchvision")
    assert tv.inception3a.branch2[1].conv.kernel_size == (3, 3)
    assert tv.inception3a.branch2[1].conv.bias is None


def test_stages_are_named_like_the_paper() -> None:
    names = [n for n, _ in meta_model(layout="torchvision").named_children()]
    assert names[:5] == ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"]
    assert [n for n in names if n.startswith("inception")] == [
        "inception3a", "inception3b", "inception4a", "inception4b", "inception4c", "inception4d", "inception4e",
        "inception5a", "inception5b"]
    assert names[-2:] == ["aux_heads", "head"]


# options -> (smallest input of the main path: every mode, smallest with the aux heads: train mode, or None)
SMALLEST = [({}, 31, 79), ({"aux_logits": False}, 31, None), ({"layout": "torchvision"}, 15, 15)]


@pytest.mark.parametrize(("options", "main", "aux"), SMALLEST)
def test_smallest_input(options: dict, main: int, aux: int | None) -> None:
    torch.manual_seed(0)
    model = create_model(NAME, num_classes=5, **options)
    assert model.min_input_size == (main, main)
    assert model.eval()(torch.randn(1, 3, main, main)).shape == (1, 5)  # eval mode: the aux heads do not run
    with pytest.raises(ValueError, match=f"smallest valid size is {main}x{main}"):
        model(torch.randn(1, 3, main - 1, main - 1))
    train = aux or main
    out = model.train()(torch.randn(2, 3, train, train))
    assert (out.logits if isinstance(out, ModelOutput) else out).shape == (2, 5)
    assert isinstance(out, ModelOutput) == (aux is not None)
    with pytest.raises(ValueError, match=f"smallest valid size is {train}x{train}"):
        model(torch.randn(2, 3, train - 1, train - 1))
    # the bounds are tight: without the checks, one pixel less fails inside the network in each mode
    model.min_input_size, model.aux_min_input_size = (1, 1), None
    with pytest.raises(RuntimeError):
        model.eval()(torch.randn(1, 3, main - 1, main - 1))
    with pytest.raises(RuntimeError):
        model.train()(torch.randn(2, 3, train - 1, train - 1))


def test_card_gives_the_eval_minimum_and_names_the_train_minimum() -> None:
    card = model_card(NAME)
    assert card.min_input_size == 31
    assert "79x79" in card.differences and "31x31" in card.differences


def test_train_mode_returns_aux_in_depth_order() -> None:
    torch.manual_seed(0)
    model = create_model(NAME, num_classes=4, layout="torchvision")
    seen: dict[str, torch.Tensor] = {}
    for after, head in model.aux_heads.items():
        head.register_forward_hook(lambda _m, _i, out, after=after: seen.__setitem__(after, out))
    out = model.train()(torch.randn(2, 3, 64, 64))
    assert isinstance(out, ModelOutput) and out.logits.shape == (2, 4)
    assert len(out.aux_logits) == 2
    assert out.aux_logits[0] is seen["inception4a"] and out.aux_logits[1] is seen["inception4d"]
    assert isinstance(model.eval()(torch.randn(1, 3, 64, 64)), torch.Tensor)


def test_aux_logits_false_removes_aux_heads() -> None:
    model = meta_model(aux_logits=False)
    assert model.aux_heads is None
    assert not any("aux" in k for k in model.state_dict())
    assert n_params(meta_model()) - n_params(model) == 2 * (2048 * 1024 + 1024 + 1024 * 1000 + 1000 + 128) + (
        512 + 528) * 128


def test_num_classes_changes_only_classifiers() -> None:
    a, b = meta_model(num_classes=1000).state_dict(), meta_model(num_classes=10).state_dict()
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k].shape != b[k].shape}
    assert changed == {"head.fc.weight", "head.fc.bias", "aux_heads.inception4a.fc.weight",
                       "aux_heads.inception4a.fc.bias", "aux_heads.inception4d.fc.weight",
                       "aux_heads.inception4d.fc.bias"}


def test_reset_classifier_covers_aux_heads() -> None:
    model = meta_model()
    model.reset_classifier(7)
    assert all(h.fc.out_features == 7 for h in [model.head, *model.aux_heads.values()])


def test_bad_options_raise() -> None:
    with pytest.raises(ValueError, match="layout"):
        create_model(NAME, layout="slim")
    with pytest.raises(ValueError, match="branch5_kernel"):
        meta_model(branch5_kernel=4)
    with pytest.raises(ValueError, match="dropout"):
        meta_model(dropout=2.0)


@pytest.mark.slow
def test_gradients_reach_input_and_every_parameter() -> None:
    torch.manual_seed(0)
    model = create_model(NAME, num_classes=3, layout="torchvision").train()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = model(x)
    (out.logits.sum() + sum(a.sum() for a in out.aux_logits)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.parameters())


# ---------------------------------------------------------------------------------------------- torchvision


@pytest.mark.reference
@pytest.mark.slow
@pytest.mark.parametrize("aux", [True, False])
def test_torchvision_conversion(aux: bool) -> None:
    tv = pytest.importorskip("torchvision")
    from cnnlab.models import from_torchvision

    torch.manual_seed(0)
    # transform_input=False: cnnlab has no built-in input re-normalization; init_weights explicit to silence
    # torchvision's FutureWarning
    ref = tv.models.googlenet(weights=None, aux_logits=aux, transform_input=False, init_weights=True)
    randomize_batchnorm(ref)
    ours = from_torchvision(NAME, ref.state_dict(), aux_logits=aux, transform_input=False)
    assert n_params(ours) == n_params(ref) == (13_004_888 if aux else 6_624_904)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ref.eval()(x) - ours.eval()(x)).abs().max() < 1e-5
    if aux:  # train mode with dropout off: the aux heads agree too (torchvision order: logits, aux2, aux1)
        for model in (ref, ours):
            for m in model.modules():
                if isinstance(m, nn.Dropout):
                    m.p = 0.0
        with torch.no_grad():
            r, o = ref.train()(x), ours.train()(x)
        assert (r.logits - o.logits).abs().max() < 1e-5
        assert (r.aux_logits1 - o.aux_logits[0]).abs().max() < 1e-5
        assert (r.aux_logits2 - o.aux_logits[1]).abs().max() < 1e-5


@pytest.mark.reference
def test_torchvision_transform_input_is_built_in() -> None:
    """torchvision's pretrained GoogLeNet re-scales normalised input; from_torchvision(transform_input=True) too."""
    tv = pytest.importorskip("torchvision")
    from cnnlab.models import from_torchvision

    torch.manual_seed(0)
    ref = tv.models.googlenet(weights=None, aux_logits=False, transform_input=True, init_weights=True).eval()
    randomize_batchnorm(ref)
    ours = from_torchvision(NAME, ref.state_dict(), aux_logits=False, transform_input=True).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (ref(x) - ours(x)).abs().max() < 1e-5
