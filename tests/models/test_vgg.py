"""VGG: counts from the paper's Table 1 in closed form, layer names, batch-norm variants, head options."""

import pytest
import torch
from torch import nn

import cnnlab
from _helpers import meta_model, n_params
from cnnlab.models.vgg import FCHead

# Simonyan & Zisserman 2015, Table 1, written out again here: conv widths, "M" = 2x2/2 max-pool
TABLE_1 = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}
FC = [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]


def closed_form(name: str, batch_norm: bool, size: int = 224) -> tuple[int, int]:
    params = macs = 0
    c_in = 3
    for v in TABLE_1[name]:
        if v == "M":
            size //= 2
            continue
        params += 9 * c_in * v + v + (2 * v if batch_norm else 0)  # conv bias kept before BN (torchvision)
        macs += size * size * 9 * c_in * v
        c_in = v
    for f_in, f_out in FC:
        params += f_in * f_out + f_out
        macs += f_in * f_out
    return params, macs


@pytest.mark.parametrize("name", list(TABLE_1))
@pytest.mark.parametrize("batch_norm", [False, True])
def test_params_and_macs_match_table_1(name, batch_norm):
    full = name + ("_bn" if batch_norm else "")
    params, macs = closed_form(name, batch_norm)
    card = cnnlab.model_card(full)
    assert n_params(meta_model(full)) == params == card.reference.params
    assert card.reference.macs == macs


def test_vgg16_fc6_and_depths():
    model = meta_model("vgg16")
    assert n_params(model.head.fc6) == 25088 * 4096 + 4096 == 102_764_544
    for name, depth in (("vgg11", 11), ("vgg13", 13), ("vgg16", 16), ("vgg19", 19)):
        weight_layers = [m for m in meta_model(name).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(weight_layers) == depth


def test_stage_names_read_like_the_paper():
    model = meta_model("vgg16")
    assert model.stage_names[:3] == ["conv1_1", "conv1_2", "pool1"]
    assert model.stage_names[-4:] == ["conv5_1", "conv5_2", "conv5_3", "pool5"]
    assert [name for name, _ in model.head.named_children()] == [
        "pool", "flatten", "fc6", "act6", "drop6", "fc7", "act7", "drop7", "fc"]


def test_batch_norm_after_every_conv():
    model = meta_model("vgg11_bn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 8
    assert all(c.bias is not None and c.out_channels == n.num_features for c, n in zip(convs, norms))


def test_features_are_7x7_at_224_and_adaptive_pool_keeps_fc6():
    model = meta_model("vgg13").eval()
    features, _ = model.forward_features(torch.empty(1, 3, 224, 224, device="meta"))
    assert features.shape == (1, 512, 7, 7)
    assert model(torch.empty(1, 3, 100, 132, device="meta")).shape == (1, 1000)


def test_num_classes_dropout_and_reset():
    model = meta_model("vgg11", num_classes=10, dropout=0.2)
    assert model.head.fc.out_features == 10 and model.head.drop6.p == 0.2
    model.reset_classifier(7)
    assert model.head.fc.out_features == 7 and model.head.fc.in_features == 4096


def test_small_forward_on_cpu():
    # the real VGG-11 convolutions with a 64-wide head: materialising fc6 (103M weights) would dominate the test
    model = meta_model("vgg11", num_classes=2)
    model.head = FCHead(512, 2, pool_size=1, hidden=(64, 64))
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    for p in model.parameters():
        nn.init.normal_(p, 0.0, 0.02)
    out = model.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="config must be one of"):
        cnnlab.models.vgg.vgg("C")
    with pytest.raises(ValueError, match="dropout"):
        meta_model("vgg11", dropout=1.5)
    with pytest.raises(ValueError, match="smallest valid size is 32x32"):
        meta_model("vgg11")(torch.empty(1, 3, 31, 31, device="meta"))
