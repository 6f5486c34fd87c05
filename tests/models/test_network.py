"""Network: stage order, aux outputs by mode, input checks (main path always, aux heads in train mode),
reset_classifier, aux_loss weighting."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.blocks import ClassifierHead, ConvNormAct
from cnnlab.models import ModelOutput, Network, aux_loss


def tiny(aux: bool = True) -> Network:
    stages = [("conv1", ConvNormAct(3, 8, 3, stride=2)), ("conv2", ConvNormAct(8, 16, 3, stride=2))]
    aux_heads = {"conv1": ClassifierHead(8, 5)} if aux else None
    return Network(stages, ClassifierHead(16, 5), aux_heads, min_input_size=4, name="tiny")


def test_stages_are_direct_children_in_order():
    net = tiny()
    assert net.stage_names == ["conv1", "conv2"]
    assert [n for n, _ in net.named_children()][:2] == ["conv1", "conv2"]


def test_train_mode_returns_model_output_eval_returns_logits():
    net = tiny()
    x = torch.randn(2, 3, 16, 16)
    out = net.train()(x)
    assert isinstance(out, ModelOutput) and out.logits.shape == (2, 5) and len(out.aux_logits) == 1
    assert net.eval()(x).shape == (2, 5)
    assert tiny(aux=False).train()(x).shape == (2, 5)


def test_input_checks_name_the_smallest_size_and_channels():
    net = tiny()
    with pytest.raises(ValueError, match="smallest valid size is 4x4"):
        net(torch.randn(1, 3, 3, 8))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        net(torch.randn(1, 1, 8, 8))


def test_tracing_skips_the_input_checks_without_tracer_warnings():
    # the ONNX exporter traces the network: Python checks on tensor shapes would print TracerWarnings
    net = tiny(aux=False).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", torch.jit.TracerWarning)
        traced = torch.jit.trace(net, torch.randn(1, 3, 16, 16))
    assert torch.equal(traced(torch.ones(1, 3, 16, 16)), net(torch.ones(1, 3, 16, 16)))


def aux_sized(aux_min: int | None = 12) -> Network:
    """``tiny`` whose aux head declares its own minimum (main path: 4x4)."""
    stages = [("conv1", ConvNormAct(3, 8, 3, stride=2)), ("conv2", ConvNormAct(8, 16, 3, stride=2))]
    return Network(stages, ClassifierHead(16, 5), {"conv1": ClassifierHead(8, 5)}, min_input_size=4, name="tiny",
                   aux_min_input_size=aux_min)


def test_eval_mode_accepts_the_main_path_minimum_below_the_aux_minimum():
    net = aux_sized().eval()
    assert net.min_input_size == (4, 4) and net.aux_min_input_size == (12, 12)
    assert net(torch.randn(1, 3, 4, 4)).shape == (1, 5)
    with pytest.raises(ValueError, match="smallest valid size is 4x4"):
        net(torch.randn(1, 3, 3, 8))


def test_train_mode_with_aux_heads_raises_naming_the_aux_minimum():
    net = aux_sized().train()
    with pytest.raises(ValueError, match="smallest valid size is 12x12") as info:
        net(torch.randn(2, 3, 11, 16))
    message = str(info.value)
    assert "auxiliary classifier" in message and "eval mode or aux_logits=False" in message and "4x4" in message
    # below the main path's minimum too: train mode still names what train mode needs
    with pytest.raises(ValueError, match="smallest valid size is 12x12"):
        net(torch.randn(2, 3, 3, 3))
    out = net(torch.randn(2, 3, 12, 12))
    assert isinstance(out, ModelOutput) and len(out.aux_logits) == 1


def test_aux_minimum_is_ignored_without_aux_heads_or_when_not_given():
    stages = [("conv1", ConvNormAct(3, 8, 3, stride=2))]
    no_heads = Network(stages, ClassifierHead(8, 5), min_input_size=4, aux_min_input_size=12)
    assert no_heads.train()(torch.randn(2, 3, 4, 4)).shape == (2, 5)
    default = aux_sized(None).train()
    assert default.aux_min_input_size is None
    assert isinstance(default(torch.randn(2, 3, 4, 4)), ModelOutput)
    with pytest.raises(ValueError, match="smallest valid size is 4x4"):
        default(torch.randn(2, 3, 3, 3))
    # per side: (H, W) minima are checked independently
    wide = aux_sized((4, 12)).train()
    assert isinstance(wide(torch.randn(2, 3, 4, 12)), ModelOutput)
    with pytest.raises(ValueError, match="smallest valid size is 4x12"):
        wide(torch.randn(2, 3, 12, 11))


def test_reset_classifier_changes_only_classifiers():
    net = tiny()
    before = {n: p.shape for n, p in net.named_parameters()}
    net.reset_classifier(7)
    after = {n: p.shape for n, p in net.named_parameters()}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"head.fc.weight", "head.fc.bias", "aux_heads.conv1.fc.weight", "aux_heads.conv1.fc.bias"}
    assert net.eval()(torch.randn(1, 3, 8, 8)).shape == (1, 7)


def test_bad_stage_configuration_raises():
    with pytest.raises(ValueError, match="unknown stage"):
        Network([("a", nn.Identity())], nn.Identity(), {"b": nn.Identity()})
    with pytest.raises(ValueError, match="reserved"):
        Network([("head", nn.Identity())], nn.Identity())


def test_aux_loss_weights_each_aux_head():
    torch.manual_seed(0)
    target = torch.tensor([1, 2])
    main, a1, a2 = torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 4)
    expected = F.cross_entropy(main, target) + 0.3 * F.cross_entropy(a1, target) + 0.3 * F.cross_entropy(a2, target)
    assert torch.allclose(aux_loss(ModelOutput(main, (a1, a2)), target), expected)
    assert torch.allclose(aux_loss(main, target), F.cross_entropy(main, target))
    custom = aux_loss(ModelOutput(main, (a1, a2)), target, aux_weights=(0.1, 0.5))
    assert torch.allclose(custom, F.cross_entropy(main, target) + 0.1 * F.cross_entropy(a1, target)
                          + 0.5 * F.cross_entropy(a2, target))
    with pytest.raises(ValueError, match="aux_weights"):
        aux_loss(ModelOutput(main, (a1, a2)), target, aux_weights=(0.3,))
