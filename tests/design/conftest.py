"""Shared helpers for the design tests: an empirical receptive-field probe independent of cnnlab.analysis."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def positive_weights(model: nn.Module) -> nn.Module:
    """Every weight positive, every bias zero, eval mode: with a positive input no ReLU is ever zero, so the
    input gradient of an output unit is nonzero exactly on its receptive field."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.full_like(p, 0.0) if name.endswith("bias") else torch.rand_like(p) + 0.1)
    return model.eval()


def gradient_window(model: nn.Module, size: tuple[int, int, int]) -> tuple[range, range]:
    """Rows and columns of the input that one central output unit of ``model``'s last map depends on."""
    x = (torch.rand(1, *size, dtype=torch.float64) + 0.5).requires_grad_(True)
    out = model.double()(x)
    h, w = out.shape[-2:]
    out[0, 0, h // 2, w // 2].backward()
    grad = x.grad[0].abs().sum(0)
    rows = torch.nonzero(grad.sum(1)).flatten()
    cols = torch.nonzero(grad.sum(0)).flatten()
    return range(int(rows[0]), int(rows[-1]) + 1), range(int(cols[0]), int(cols[-1]) + 1)


@pytest.fixture
def probe():
    """``probe(model, size)`` -> the (rows, cols) input window of one central output unit."""

    def run(model: nn.Module, size: tuple[int, int, int]) -> tuple[range, range]:
        return gradient_window(positive_weights(model), size)

    return run
