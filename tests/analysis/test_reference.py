"""Reference checks against torchvision / timm models (run in /work/venv-ref; skipped without them)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.analysis import analyze, empirical_receptive_field


def flop_counter_macs(model: torch.nn.Module, size: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, *size, device="meta"))
    return counter.get_total_flops() // 2


@pytest.mark.reference
@pytest.mark.parametrize("name,size", [("resnet50", 224), ("inception_v3", 299), ("googlenet", 224),
                                       ("vgg16", 224), ("alexnet", 224), ("squeezenet1_0", 224),
                                       ("mobilenet_v2", 224), ("densenet121", 224), ("vit_b_16", 224)])
def test_torchvision_macs_equal_flop_counter_mode(name, size):
    tvm = pytest.importorskip("torchvision.models")
    kwargs = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    with torch.device("meta"):
        model = getattr(tvm, name)(**kwargs).eval()
    rep = analyze(model, (3, size, size))
    assert rep.macs == flop_counter_macs(model, (3, size, size))
    assert rep.params == sum(p.numel() for p in model.parameters())


@pytest.mark.reference
def test_timm_conv_subclass_is_counted():
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnetv2_50x1_bit", pretrained=False).eval()  # StdConv2d, a Conv2d subclass
    rep = analyze(model, (3, 224, 224))
    with torch.device("meta"):
        ref = timm.create_model("resnetv2_50x1_bit", pretrained=False).eval()
    assert rep.macs == flop_counter_macs(ref, (3, 224, 224))
    assert rep.macs > 4_000_000_000  # ptflops / thop report ~2-22M here (docs/references.md)
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.reference
@pytest.mark.slow
def test_torchvision_resnet18_field_equals_empirical():
    tvm = pytest.importorskip("torchvision.models")
    model = tvm.resnet18().eval()
    rf = analyze(model, (3, 224, 224)).layer("layer4").rf
    assert rf.size == (435, 435)  # the commonly cited ResNet-18 value
    side = 435 + 77
    assert empirical_receptive_field(model, (3, side, side), output="layer4") == (435, 435)
