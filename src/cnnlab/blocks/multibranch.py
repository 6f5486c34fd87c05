"""Multi-branch modules: parallel branches on one input, concatenated on channels (the Inception pattern).

``MultiBranch`` and ``ResidualMultiBranch`` are the generic modules, which ``build_multi_branch`` makes from a
``MultiBranchSpec``; the rest is the small machinery behind the paper modules of ``cnnlab.blocks.inception``:
a widths dataclass checked on creation, whose ``spec()`` is the module, and module classes built from it.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.conv import make_activation
from cnnlab.blocks.residual import make_shortcut
from cnnlab.blocks.spec import (
    LayerSpec,
    MultiBranchSpec,
    avg_pool,
    build_branches,
    build_layer,
    conv,
    max_pool,
)


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


def build_multi_branch(spec: MultiBranchSpec, in_channels: int,
                       conv_kwargs: dict[str, object]) -> MultiBranch:
    """An Inception module (``MultiBranch``), or an Inception-ResNet unit when ``spec.residual``."""
    branches = build_branches(spec, in_channels, conv_kwargs)
    if spec.residual:
        return ResidualMultiBranch(in_channels, branches, spec.scale, spec.activate,
                                   projection=spec.projection)
    return MultiBranch(in_channels, branches)


def build_sequence(units: Sequence[tuple[str, LayerSpec | MultiBranchSpec]], in_channels: int,
                   conv_kwargs: dict[str, object]) -> list[tuple[str, nn.Module]]:
    """Named layers and multi-branch modules in order (a stem's children), each on the previous output."""
    modules = []
    for name, unit in units:
        build_unit = build_multi_branch if isinstance(unit, MultiBranchSpec) else build_layer
        modules.append((name, build_unit(unit, in_channels, conv_kwargs)))  # type: ignore[arg-type]
        in_channels = unit.channels(in_channels)
    return modules


def _frozen_widths(cls: type) -> type:
    """A frozen dataclass whose fields are checked on creation: each a positive int, or a tuple of as many
    positive ints as its type says."""
    lengths = {field: len(typing.get_args(hint)) for field, hint in typing.get_type_hints(cls).items()}  # int: 0

    def check(widths: object) -> None:
        for field, length in lengths.items():
            name, value = f"{type(widths).__name__}.{field}", getattr(widths, field)
            if length and (not isinstance(value, tuple) or len(value) != length):
                raise ValueError(f"{name} must be a tuple of {length} positive ints, got {value!r}")
            for v in value if length else (value,):
                check_positive(v, name)

    cls.__post_init__ = check  # type: ignore[attr-defined]
    return dataclass(frozen=True)(cls)


def _paper_branches(widths_type: type, in_channels: int, widths, conv_kwargs: dict[str, object],
                    **options) -> list[tuple[nn.Module, int]]:
    """The branches of ``widths.spec(**options)`` on ``in_channels``, convs ConvNormAct(**conv_kwargs)."""
    check_positive(in_channels, "in_channels")
    if not isinstance(widths, widths_type):
        raise TypeError(f"widths must be a {widths_type.__name__}, got {type(widths).__name__}")
    return build_branches(widths.spec(**options), in_channels, conv_kwargs)


class _PaperModule(MultiBranch):
    """A paper's module without options of its own: the branches of ``widths.spec()`` (a ``widths_type``),
    their convs ``ConvNormAct(**options)``."""

    widths_type: type

    def __init__(self, in_channels: int, widths, **options) -> None:
        super().__init__(in_channels, _paper_branches(self.widths_type, in_channels, widths, options))
        self.widths = widths


class _ResidualPaperModule(ResidualMultiBranch):
    """An Inception-ResNet unit on the branches of ``widths.spec()``, ``widths`` a ``widths_type``."""

    widths_type: type

    def __init__(self, in_channels: int, widths, scale: float = 1.0, activate: bool = True,
                 act: str | None = "relu", **conv_kwargs) -> None:
        branches = _paper_branches(self.widths_type, in_channels, widths, conv_kwargs)
        super().__init__(in_channels, branches, scale, activate, act)
        self.widths = widths


def _convs(widths: tuple[int, ...], kernels: tuple[int | tuple[int, int], ...]) -> tuple[LayerSpec, ...]:
    """Padded stride-1 convs in sequence, one per (width, kernel): a branch of an Inception module."""
    return tuple(conv(w, k) for w, k in zip(widths, kernels, strict=True))


def pool_proj(out: int, count_include_pad: bool = True, pool: str = "avg") -> tuple[LayerSpec, LayerSpec]:
    """The pool branch of every Inception module: a 3x3 stride-1 pool (average; GoogLeNet's max), 1x1 conv."""
    return (max_pool(3, 1, 1) if pool == "max" else avg_pool(3, 1, 1, count_include_pad), conv(out, 1))
