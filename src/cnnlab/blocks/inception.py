"""Inception modules: GoogLeNet v1, Inception-v3 A/B/C and grid reductions, Inception-v4, Inception-ResNet.

Every module runs parallel branches on one input and concatenates them along channels (torch.cat in
branch order, ``branch0`` first). Branch widths are data: one small frozen dataclass per module type,
with presets for the papers' rows. Counting convention as in ``cnnlab.blocks.conv``: a conv ``k_h x k_w``
from ``C_in`` to ``C_out`` has ``k_h*k_w*C_in*C_out`` weights, plus ``2*C_out`` with batch norm or
``C_out`` bias without; its MACs are ``H_out*W_out`` times its weights. In the formulas below
``w(k, a, b) = k*a*b + e(b)`` with ``e(b) = 2b`` (norm) or ``b`` (bias, no norm), ``k`` the kernel area.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.conv import ConvNormAct

# (out_channels, kernel, stride, padding); padding None = "same" at stride 1, 0 = "valid" (the papers' V)
Layer = tuple[int, int | tuple[int, int], int, int | None]


def _check_widths(widths: object) -> None:
    """Every field of a widths dataclass is a positive int or a tuple of positive ints."""
    for f in dataclasses.fields(widths):  # type: ignore[arg-type]
        value = getattr(widths, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            check_positive(v, f"{type(widths).__name__}.{f.name}")


def _chain(in_channels: int, layers: Sequence[Layer], **conv_kwargs) -> nn.Module:
    """ConvNormAct layers in sequence; a single layer is returned bare (as torchvision / timm name it)."""
    convs = []
    for out, kernel, stride, padding in layers:
        convs.append(ConvNormAct(in_channels, out, kernel, stride, padding, **conv_kwargs))
        in_channels = out
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class MultiBranch(nn.Module):
    """Base of every Inception module: ``branch0 .. branchN`` on the same input, concatenated on channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = check_positive(in_channels, "in_channels")
        self.out_channels = 0
        self.num_branches = 0

    def add_branch(self, module: nn.Module, out_channels: int) -> None:
        """Append a branch producing ``out_channels`` channels (concatenated after the previous ones)."""
        self.add_module(f"branch{self.num_branches}", module)
        self.num_branches += 1
        self.out_channels += out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.num_branches)], dim=1)


def _pool_proj(in_channels: int, out_channels: int, pool: str, count_include_pad: bool = True,
               **conv_kwargs) -> nn.Sequential:
    """3x3 stride-1 pooling then a 1x1 projection (the pool branch of every Inception module)."""
    if pool == "max":
        layer: nn.Module = nn.MaxPool2d(3, stride=1, padding=1)
    else:
        layer = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=count_include_pad)
    return nn.Sequential(layer, ConvNormAct(in_channels, out_channels, 1, **conv_kwargs))


# --------------------------------------------------------------------------------------------------------
# GoogLeNet (Inception-v1)


@dataclass(frozen=True)
class InceptionV1Widths:
    """One row of GoogLeNet's Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""

    b1: int
    b3_reduce: int
    b3: int
    b5_reduce: int
    b5: int
    pool_proj: int

    def __post_init__(self) -> None:
        _check_widths(self)

    @property
    def out_channels(self) -> int:
        return self.b1 + self.b3 + self.b5 + self.pool_proj


class InceptionV1(MultiBranch):
    """GoogLeNet's Inception module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max-pool->1x1, concatenated.

    Szegedy et al. 2015, "Going Deeper with Convolutions", Fig. 2(b) and Table 1. The paper has biases
    and no batch norm (``norm=False``, the default here); torchvision adds BN (``norm=True``) and uses a
    3x3 conv in the "5x5" branch (``branch5_kernel=3``, pytorch/vision#906, inherited from TF-slim).
    Params, ``C = in_channels``, ``k5 = branch5_kernel**2``: ``w(1,C,b1) + w(1,C,r3) + w(9,r3,b3) +
    w(1,C,r5) + w(k5,r5,b5) + w(1,C,pp)``. MACs: ``H*W`` times the weight part of the same sum.
    """

    def __init__(self, in_channels: int, widths: InceptionV1Widths, branch5_kernel: int = 5, norm: bool = False,
                 **conv_kwargs) -> None:
        super().__init__(in_channels)
        if not isinstance(widths, InceptionV1Widths):
            raise TypeError(f"widths must be an InceptionV1Widths, got {type(widths).__name__}")
        if not isinstance(branch5_kernel, int) or branch5_kernel < 1 or branch5_kernel % 2 == 0:
            raise ValueError(f"branch5_kernel must be an odd int (5 as the paper, 3 as torchvision), "
                             f"got {branch5_kernel!r}")
        kw = dict(norm=norm, **conv_kwargs)
        w = widths
        self.widths = w
        self.add_branch(_chain(in_channels, [(w.b1, 1, 1, None)], **kw), w.b1)
        self.add_branch(_chain(in_channels, [(w.b3_reduce, 1, 1, None), (w.b3, 3, 1, None)], **kw), w.b3)
        self.add_branch(_chain(in_channels, [(w.b5_reduce, 1, 1, None), (w.b5, branch5_kernel, 1, None)], **kw),
                        w.b5)
        self.add_branch(_pool_proj(in_channels, w.pool_proj, "max", **kw), w.pool_proj)
