"""SqueezeNet 1.0 / 1.1 / simple bypass: Table 1 in closed form, the conv classifier, bypass placement."""

import math

import pytest
import torch
from torch import nn

import cnnlab
from _helpers import meta_model
from cnnlab.blocks import Fire

# Iandola et al. 2016 Table 1 (1.0) and DeepScale v1.1: ("conv", out, k, stride) / ("pool",) / (s1x1, e1x1, e3x3)
V1_0 = [("conv", 96, 7, 2), ("pool",), (16, 64, 64), (16, 64, 64), (32, 128, 128), ("pool",),
        (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256), ("pool",), (64, 256, 256)]
V1_1 = [("conv", 64, 3, 2), ("pool",), (16, 64, 64), (16, 64, 64), ("pool",), (32, 128, 128),
        (32, 128, 128), ("pool",), (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256)]


def closed_form(table, size: int = 224, classes: int = 1000) -> tuple[int, int]:
    c, params, macs = 3, 0, 0
    for row in table:
        if row[0] == "conv":
            _, out, k, s = row
            size = (size - k) // s + 1
            params += k * k * c * out + out
            macs += size * size * k * k * c * out
            c = out
        elif row[0] == "pool":
            size = math.ceil((size - 3) / 2) + 1  # Caffe's ceil-mode pooling
        else:
            s1, e1, e3 = row
            params += c * s1 + s1 + s1 * e1 + e1 + 9 * s1 * e3 + e3
            macs += size * size * (c * s1 + s1 * e1 + 9 * s1 * e3)
            c = e1 + e3
    return params + c * classes + classes, macs + size * size * c * classes  # conv10 is 1x1 on the last map


@pytest.mark.parametrize("name, table", [("squeezenet1_0", V1_0), ("squeezenet1_1", V1_1),
                                         ("squeezenet1_0_bypass", V1_0)])
def test_counts_match_closed_form_and_card(name, table):
    params, macs = closed_form(table)
    card = cnnlab.model_card(name)
    assert sum(p.numel() for p in meta_model(name).parameters()) == params == card.reference.params
    assert macs == card.reference.macs


def test_paper_total():
    # Table 1 of the paper totals 1,248,424 parameters before pruning
    assert closed_form(V1_0)[0] == 1_248_424


def test_stage_names_and_classifier_conv():
    model = meta_model("squeezenet1_0")
    assert model.stage_names == ["conv1", "maxpool1", "fire2", "fire3", "fire4", "maxpool4", "fire5", "fire6",
                                 "fire7", "fire8", "maxpool8", "fire9"]
    assert isinstance(model.head.fc, nn.Conv2d) and model.head.fc.kernel_size == (1, 1)
    assert meta_model("squeezenet1_1").stage_names[4] == "maxpool3"


def test_bypass_around_fire_3_5_7_9():
    model = meta_model("squeezenet1_0_bypass")
    fires = {name: getattr(model, name) for name in model.stage_names if name.startswith("fire")}
    assert {name for name, f in fires.items() if f.bypass} == {"fire3", "fire5", "fire7", "fire9"}
    assert all(isinstance(f, Fire) for f in fires.values())


def test_bypass_model_equals_plain_plus_identity():
    torch.manual_seed(0)
    plain = cnnlab.create_model("squeezenet1_0").eval()
    bypass = cnnlab.create_model("squeezenet1_0_bypass").eval()
    bypass.load_state_dict(plain.state_dict())
    x = torch.randn(1, 128, 9, 9)
    torch.testing.assert_close(bypass.fire3(x), plain.fire3(x) + x)
    images = torch.randn(2, 3, 64, 64)
    assert not torch.allclose(bypass(images), plain(images))


@pytest.mark.parametrize("name, smallest", [("squeezenet1_0", 21), ("squeezenet1_1", 17)])
def test_forward_and_min_input_size(name, smallest):
    model = cnnlab.create_model(name, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, smallest, smallest)).shape == (2, 5)
    with pytest.raises(ValueError, match=f"{smallest}x{smallest}"):
        model(torch.randn(1, 3, smallest - 1, smallest - 1))
    x = torch.randn(1, 3, smallest - 1, smallest - 1)
    with pytest.raises(RuntimeError), torch.no_grad():  # the bound is tight: one pixel less breaks a pool
        for stage in model.stage_names:
            x = getattr(model, stage)(x)


def test_reset_classifier():
    model = cnnlab.create_model("squeezenet1_1").eval()
    model.reset_classifier(3)
    assert model.head.fc.weight.shape == (3, 512, 1, 1)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_bad_version():
    with pytest.raises(ValueError, match="version"):
        cnnlab.models.squeezenet.squeezenet("1_2")
