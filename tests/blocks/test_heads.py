"""ClassifierHead: global average pooling makes the head size independent of the spatial size."""

from __future__ import annotations

import pytest
import torch

from cnnlab.blocks import ClassifierHead


@pytest.mark.parametrize("size", [1, 7, 13])
def test_head_shape_any_spatial_size(size):
    head = ClassifierHead(1024, 1000, dropout=0.4)
    assert head.eval()(torch.randn(2, 1024, size, size)).shape == (2, 1000)


def test_head_params_are_c_times_classes_plus_bias():
    # GoogLeNet: 1024 x 1000 + 1000, not 7 x 7 x 1024 x 1000 (Szegedy et al. 2015, Sec. 5)
    head = ClassifierHead(1024, 1000)
    assert sum(p.numel() for p in head.parameters()) == 1024 * 1000 + 1000


def test_gradients_reach_input_and_reset_classifier():
    head = ClassifierHead(8, 3)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    head(x).sum().backward()
    assert x.grad.abs().sum() > 0
    head.reset_classifier(11)
    assert head(torch.randn(1, 8, 2, 2)).shape == (1, 11)


@pytest.mark.parametrize("kwargs,argument", [({"in_channels": 0, "num_classes": 3}, "in_channels"),
                                             ({"in_channels": 3, "num_classes": 0}, "num_classes"),
                                             ({"in_channels": 3, "num_classes": 3, "dropout": 1.0}, "dropout")])
def test_bad_arguments(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        ClassifierHead(**kwargs)


def test_max_pool_and_logit_scale():
    # airbench's head (arXiv:2404.00498): global max-pool, linear without bias, logits x 1/9
    head = ClassifierHead(4, 3, bias=False, pool="max", scale=1 / 9)
    x = torch.randn(2, 4, 3, 3)
    expected = x.amax((2, 3)) @ head.fc.weight.T / 9
    torch.testing.assert_close(head(x), expected)
    assert sum(p.numel() for p in head.parameters()) == 4 * 3  # the scale is a constant, not a parameter


@pytest.mark.parametrize("kwargs,argument", [({"pool": "min"}, "pool"), ({"scale": 0}, "scale"),
                                             ({"scale": float("inf")}, "scale")])
def test_bad_pool_or_scale(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        ClassifierHead(3, 3, **kwargs)
