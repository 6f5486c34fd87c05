"""fastcifar_vgg (airbench94, arXiv:2404.00498): counts by closed form, the group order, frozen BN scales, the head.
test_zoo.py adds the generic checks (card, meta build, min input size, num_classes)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnlab
from _helpers import count_macs, meta_model, n_params
from cnnlab.models.fastcifar import conv_group

K = 10
WIDTHS = (64, 256, 256)


def counts(widths=WIDTHS, size: int = 32, classes: int = K) -> tuple[int, int]:
    """Params and MACs by hand: 2x2 whitening conv 3 -> 24 (bias), then per group conv 3x3 (full grid),
    pool 2, BN, conv 3x3 (pooled grid), BN; linear C -> K without bias."""
    grid = size - 1  # the unpadded 2x2 conv: 31x31
    params = 24 * 3 * 2 * 2 + 24
    macs = grid * grid * 24 * 3 * 2 * 2
    prev = 24
    for c in widths:
        params += 9 * prev * c + 2 * c + 9 * c * c + 2 * c
        macs += grid * grid * 9 * prev * c  # the first conv runs before the pool
        grid //= 2
        macs += grid * grid * 9 * c * c
        prev = c
    return params + prev * classes, macs + prev * classes


def test_counts_by_closed_form():
    params, macs = counts()
    assert (params, macs) == (1_972_792, 118_147_360)  # ~118 M MACs per image, as issue 12 estimates
    card = cnnlab.model_card("fastcifar_vgg")
    assert (card.reference.params, card.reference.macs) == (params, macs)
    model = meta_model("fastcifar_vgg")
    assert n_params(model) == params and count_macs(model, 32) == macs
    wide = meta_model("fastcifar_vgg", widths=(128, 384, 384), num_classes=100)
    assert (n_params(wide), count_macs(wide, 32)) == counts((128, 384, 384), classes=100)
    assert cnnlab.analyze("fastcifar_vgg").macs == macs


def test_group_order_and_batchnorm_settings():
    model = meta_model("fastcifar_vgg")
    assert model.stage_names == ["whiten", "group1", "group2", "group3"]
    first = model.group1.conv1
    assert [n for n, _ in first.named_children()] == ["conv", "pool", "bn", "act"]  # pool before the BN
    assert [n for n, _ in model.group1.conv2.named_children()] == ["conv", "bn", "act"]
    assert isinstance(first.act, nn.GELU) and isinstance(model.whiten.act, nn.GELU)
    assert model.whiten.conv.kernel_size == (2, 2) and model.whiten.conv.padding == (0, 0)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 6 and all(m.eps == 1e-12 and m.momentum == 0.4 for m in bns)
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in bns)  # scale frozen at 1
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trained == counts()[0] - 2 * sum(WIDTHS)
    free = meta_model("fastcifar_vgg", train_bn_weight=True)
    assert all(p.requires_grad for p in free.parameters())


def test_forward_backward_and_head_equals_airbench_pooling():
    torch.manual_seed(0)
    model = cnnlab.create_model("fastcifar_vgg")
    assert not model.whiten.conv.bias.any()  # the whitening bias starts at zero
    x = torch.randn(4, 3, 32, 32)
    out = model(x)
    out.sum().backward()
    assert out.shape == (4, K)
    assert all((p.grad is not None) == p.requires_grad for p in model.parameters())
    model.eval()
    with torch.no_grad():
        features, _ = model.forward_features(x)
        assert features.shape == (4, 256, 3, 3)
        # the code's head: MaxPool2d(3) -> flatten -> linear (no bias) -> x 1/9
        expected = F.max_pool2d(features, 3).flatten(1) @ model.head.fc.weight.T / 9
        torch.testing.assert_close(model(x), expected)


def test_conv_group_is_the_network_s_group():
    with torch.device("meta"):
        group, free = conv_group(24, 64), conv_group(24, 64, train_bn_weight=True)
    assert str(group) == str(meta_model("fastcifar_vgg").group1)
    assert [p.requires_grad for p in group.parameters()] == [True, False, True, True, False, True]
    assert all(p.requires_grad for p in free.parameters())


@pytest.mark.parametrize("widths", [(64, 256), "64", (64, 0, 256)])
def test_bad_widths(widths):
    with pytest.raises(ValueError, match="widths"):
        cnnlab.create_model("fastcifar_vgg", widths=widths)
