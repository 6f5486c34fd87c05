"""Counting helpers shared by the tests; each is independent of the cnnlab code under test."""

from __future__ import annotations

import torch
from torch import nn

import cnnlab


def n_params(module: nn.Module) -> int:
    """Number of parameters, counted by ``numel``."""
    return sum(p.numel() for p in module.parameters())


def conv_weights(module: nn.Module) -> int:
    """Weights (no biases) of every Conv2d in ``module``."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def meta_model(name: str, **options) -> nn.Module:
    """A zoo model built on the meta device: structure and counts, no memory."""
    with torch.device("meta"):
        return cnnlab.create_model(name, **options)


def count_macs(model: nn.Module, size: int, channels: int = 3) -> int:
    """Conv + linear multiply-adds of one eval-mode forward at ``size x size``, from forward hooks on meta."""
    total = 0

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
        else:
            total += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model.eval()(torch.empty(1, channels, size, size, device="meta"))
    finally:
        for h in handles:
            h.remove()
    return total


def randomize_batchnorm(model: nn.Module) -> None:
    """Non-trivial BN statistics and affine terms, so that a wrong eps or a swapped tensor shows in outputs."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                nn.init.normal_(m.weight)
                nn.init.normal_(m.bias)
