"""Test-time augmentation: the logits of several views of each image, averaged (the TrainConfig key ``tta``).

* None (``--set tta=null``): the image alone.
* ``flip``: the mean of the image's and its mirror image's logits.
* ``flip_translate``: half ``flip`` of the image, a quarter each ``flip`` of the image shifted by one pixel
  up-left and down-right (borders mirrored): six views, weighted as airbench's multi-crop evaluation
  (K. Jordan 2024, arXiv:2404.00498), which averages over a random flip and a 50% chance of a one-pixel shift.

Views run one at a time through the model in eval mode, so memory stays that of one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TTA_MODES = (None, "flip", "flip_translate")
VIEWS = {None: 1, "flip": 2, "flip_translate": 6}  # forward passes per image


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return (out[0] if isinstance(out, tuple) else out).float()  # aux outputs (train mode) are not averaged


def _mirrored(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return (_logits(model, x) + _logits(model, x.flip(-1))) / 2


def tta_logits(model: nn.Module, x: torch.Tensor, mode: str | None = None) -> torch.Tensor:
    """Float32 logits of batch ``x`` (N, C, H, W) averaged over the views of ``mode`` (see the module docstring)."""
    if mode is None:
        return _logits(model, x)
    if mode == "flip":
        return _mirrored(model, x)
    if mode != "flip_translate":
        raise ValueError(f"tta must be null, flip or flip_translate, got {mode!r}")
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    memory = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    up_left = padded[..., :h, :w].contiguous(memory_format=memory)
    down_right = padded[..., 2:, 2:].contiguous(memory_format=memory)
    return _mirrored(model, x) / 2 + (_mirrored(model, up_left) + _mirrored(model, down_right)) / 4
