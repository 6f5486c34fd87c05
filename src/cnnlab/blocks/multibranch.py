"""Multi-branch modules: parallel branches on one input, concatenated on channels (the Inception pattern).

``MultiBranch`` and ``ResidualMultiBranch`` are the generic modules ``cnnlab.models.build`` makes from a spec;
the rest is the small machinery behind the per-paper modules of ``cnnlab.blocks.inception``: a widths
dataclass checked on creation, and a module class that is its branch list (``_branches``) on those widths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.conv import ConvNormAct, make_activation
from cnnlab.blocks.residual import make_shortcut

# (out_channels, kernel, stride, padding); padding None = "same" at stride 1, 0 = "valid" (the papers' V)
Layer = tuple[int, int | tuple[int, int], int, int | None]


def _check_widths(widths: object) -> None:
    """Every field of a widths dataclass is a positive int, or a tuple of as many positive ints as annotated."""
    for f in dataclasses.fields(widths):  # type: ignore[arg-type]
        name, value = f"{type(widths).__name__}.{f.name}", getattr(widths, f.name)
        annotation = str(f.type)
        if annotation.startswith("tuple"):
            length = annotation.count("int")
            if not isinstance(value, tuple) or len(value) != length:
                raise ValueError(f"{name} must be a tuple of {length} positive ints, got {value!r}")
        for v in value if isinstance(value, tuple) else (value,):
            check_positive(v, name)


def _chain(in_channels: int, layers: Sequence[Layer], **conv_kwargs) -> nn.Module:
    """ConvNormAct layers in sequence; a single layer is returned bare (as torchvision / timm name it)."""
    convs = []
    for out, kernel, stride, padding in layers:
        convs.append(ConvNormAct(in_channels, out, kernel, stride, padding, **conv_kwargs))
        in_channels = out
    return convs[0] if len(convs) == 1 else nn.Sequential(*convs)


class MultiBranch(nn.Module):
    """Base of every Inception module: ``branch0 .. branchN`` on the same input, concatenated on channels.

    ``branches`` are ``(module, out_channels)`` pairs (``cnnlab.models.build`` passes them from a spec).
    """

    def __init__(self, in_channels: int, branches: Sequence[tuple[nn.Module, int]] = ()) -> None:
        super().__init__()
        self.in_channels = check_positive(in_channels, "in_channels")
        self.out_channels = 0
        self.num_branches = 0
        for module, out_channels in branches:
            self.add_branch(module, out_channels)

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


def _paper_branches(cls: type, in_channels: int, widths: object, **options) -> list[tuple[nn.Module, int]]:
    """``cls._branches`` for checked arguments: every paper module is its branch list on one widths dataclass."""
    check_positive(in_channels, "in_channels")
    if not isinstance(widths, cls.widths_type):  # type: ignore[attr-defined]
        raise TypeError(f"widths must be a {cls.widths_type.__name__}, got {type(widths).__name__}")  # type: ignore
    return cls._branches(in_channels, widths, **options)  # type: ignore[attr-defined]


class _PaperModule(MultiBranch):
    """A paper's module: ``_branches(in_channels, widths, **options)`` lists its ``(module, out_channels)`` pairs."""

    widths_type: type

    def __init__(self, in_channels: int, widths, **options) -> None:
        super().__init__(in_channels, _paper_branches(type(self), in_channels, widths, **options))
        self.widths = widths


def _frozen_widths(cls: type) -> type:
    """A frozen dataclass whose fields are checked to be positive ints (or tuples of them) on creation."""
    cls.__post_init__ = _check_widths  # type: ignore[attr-defined]
    return dataclass(frozen=True)(cls)


def _valid(out: int, kernel: int | tuple[int, int] = 3, stride: int = 1) -> Layer:
    return (out, kernel, stride, 0)


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= float(scale) < float("inf"):
        raise ValueError(f"scale must be a finite number >= 0 (the paper scales residuals by 0.1-0.3), got {scale!r}")
    return float(scale)


class ResidualMultiBranch(MultiBranch):
    """An Inception-ResNet unit: ``act(x + scale * expand(concat(branches)))``, ``expand`` a biased 1x1 conv
    back to ``in_channels`` (Szegedy et al. 2017, Sec. 3.2).

    ``projection=True`` keeps the branches' depth D instead: ``act(shortcut(x) + scale * expand(concat))`` with
    ``expand`` D -> D and He et al.'s option B ``shortcut`` (identity, or a 1x1 conv + BN when the input is not
    D deep). Extra params ``D*D + D`` (+ ``C*D + 2*D`` with a projection).
    """

    def __init__(self, in_channels: int, branches: Sequence[tuple[nn.Module, int]] = (), scale: float = 1.0,
                 activate: bool = True, act: str | None = "relu", projection: bool = False) -> None:
        super().__init__(in_channels, branches)
        if not self.num_branches:
            raise ValueError("ResidualMultiBranch needs at least one (module, out_channels) branch")
        # the 1x1 "filter-expansion" conv has no activation and no BN (Sec. 3.2): it only matches depths
        self.branch_channels = self.out_channels
        self.out_channels = self.branch_channels if projection else self.in_channels
        self.expand = nn.Conv2d(self.branch_channels, self.out_channels, 1, bias=True)
        self.projection = projection
        if projection:
            self.shortcut = make_shortcut("B", in_channels, self.out_channels, 1)
        self.scale = _check_scale(scale)
        self.act = make_activation(act) if activate else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x) if self.projection else x
        return self.act(shortcut + self.scale * self.expand(super().forward(x)))


class _ResidualPaperModule(ResidualMultiBranch):
    """An Inception-ResNet unit whose branches ``_branches(in_channels, widths, **conv_kwargs)`` lists."""

    widths_type: type

    def __init__(self, in_channels: int, widths, scale: float = 1.0, activate: bool = True,
                 act: str | None = "relu", **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(type(self), in_channels, widths, **conv_kwargs), scale,
                         activate, act)
        self.widths = widths
