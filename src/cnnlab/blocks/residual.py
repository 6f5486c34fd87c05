"""Residual units: basic and bottleneck, post-activation and pre-activation, shortcut options A / B / C.

Post-activation units are He et al. 2015, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385,
Fig. 2 and Fig. 5); pre-activation units are He et al. 2016, "Identity Mappings in Deep Residual Networks"
(arXiv:1603.05027, Fig. 4e). Shortcut options follow the first paper, Sec. 3.3 / Table 3:

- ``"A"``: parameter-free. Identity when the shape is kept; otherwise the input is subsampled with the unit's
  stride (every ``s``-th pixel) and zero channels are appended (the CIFAR ResNets, Sec. 4.2).
- ``"B"``: identity when the shape is kept, a 1x1 convolution (stride ``s``) + BN projection otherwise.
- ``"C"``: the projection on every unit.
- ``False``: no shortcut at all: the same layers make the "plain" networks of Sec. 4.1 / 4.2.

Counting convention as in ``cnnlab.blocks.conv``: a ``k x k`` convolution from ``C_in`` to ``C_out`` has
``k^2 C_in C_out`` weights (no bias next to a norm) and ``H_out W_out k^2 C_in C_out`` MACs; BN has ``2 C``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.blocks._validate import check_channels, check_positive
from cnnlab.blocks.conv import ActLayer, ConvNormAct, make_activation

SHORTCUT_OPTIONS = ("A", "B", "C", False)


def check_shortcut(shortcut: object) -> str | bool:
    """Raise unless ``shortcut`` is one of ``"A"``, ``"B"``, ``"C"`` or ``False`` (plain, no shortcut)."""
    if shortcut is False or (isinstance(shortcut, str) and shortcut in SHORTCUT_OPTIONS):
        return shortcut  # type: ignore[return-value]
    raise ValueError(f"shortcut must be one of {SHORTCUT_OPTIONS} ('A' zero-padded identity, 'B' projection "
                     f"when the shape changes, 'C' projection always, False no shortcut), got {shortcut!r}")


class ZeroPadShortcut(nn.Module):
    """Option A shortcut: keep every ``stride``-th pixel, append ``out - in`` zero channels; no parameters.

    He et al. 2015, Sec. 3.3 ("extra zero entries padded for increasing dimensions") and Sec. 4.2.
    The subsampled size ``ceil(H / stride)`` equals that of a stride-``s`` 3x3 (padding 1) or 1x1 convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        check_channels(in_channels, out_channels)
        if out_channels < in_channels:
            raise ValueError(f"shortcut 'A' can only add channels: out_channels={out_channels} < in_channels="
                             f"{in_channels}; use shortcut='B' (a projection) to reduce them")
        self.pad, self.stride = out_channels - in_channels, check_positive(stride, "stride")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x


def make_shortcut(shortcut: str | bool, in_channels: int, out_channels: int, stride: int,
                  norm: bool = True) -> nn.Module | None:
    """The shortcut branch for ``shortcut`` option A/B/C (None when ``False``, nn.Identity when shapes agree).

    A projection is a 1x1 convolution with the unit's stride, followed by BN when ``norm`` (post-activation);
    pre-activation units project the already normalized input, so they pass ``norm=False``.
    """
    shortcut = check_shortcut(shortcut)
    if shortcut is False:
        return None
    same_shape = in_channels == out_channels and stride == 1
    if shortcut == "C" or (shortcut == "B" and not same_shape):
        return ConvNormAct(in_channels, out_channels, 1, stride, bias=False, norm=norm, act=None)
    if same_shape:
        return nn.Identity()
    return ZeroPadShortcut(in_channels, out_channels, stride)


def _check_unit_args(in_channels: int, out_channels: int, stride: int) -> None:
    check_channels(in_channels, out_channels)
    check_positive(stride, "stride")


def _mid_channels(out_channels: int, mid_channels: int | None, expansion: int) -> int:
    if mid_channels is not None:
        return check_positive(mid_channels, "mid_channels")
    if out_channels % expansion:
        raise ValueError(f"out_channels={out_channels} must be a multiple of expansion={expansion} when "
                         f"mid_channels is not given; pass mid_channels explicitly")
    return out_channels // expansion


class _ResidualUnit(nn.Module):
    """What the four units share: the residual branch F is the ConvNormActs named in ``conv_names``, in order.

    Post-activation units (this forward) return ``act(F(x) + shortcut(x))``; pre-activation ones override it.
    """

    conv_names: tuple[str, ...] = ()

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.conv_names:
            x = getattr(self, name)(x)
        return x

    def zero_init_last(self) -> None:
        """Zero the last BN scale (post-activation: the branch then outputs its BN shift, zero at init) or, in a
        pre-activation unit, the last convolution: the unit then starts as its shortcut."""
        last = getattr(self, self.conv_names[-1])
        nn.init.zeros_(last.conv.weight if last.preact else last.bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._residual(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class BasicBlock(_ResidualUnit):
    """Post-activation basic unit: 3x3 conv-BN-ReLU, 3x3 conv-BN, add the shortcut, ReLU (He et al. 2015, Fig. 2).

    The stride sits on the first 3x3. Params: ``9 C_in C_out + 9 C_out^2 + 4 C_out`` (+ ``C_in C_out + 2 C_out``
    with a projection). MACs: ``H_out W_out (9 C_in C_out + 9 C_out^2)`` (+ ``H_out W_out C_in C_out``).
    ``zero_init_last`` sets the last BN's scale to zero so the unit starts as its shortcut (Goyal et al. 2017).
    """

    expansion = 1
    conv_names = ("conv1", "conv2")

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | bool = "B",
                 act: ActLayer = "relu", zero_init_last: bool = False) -> None:
        super().__init__()
        _check_unit_args(in_channels, out_channels, stride)
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, act=act)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, act=None)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.act = make_activation(act)
        if zero_init_last:
            self.zero_init_last()


class Bottleneck(_ResidualUnit):
    """Post-activation bottleneck: 1x1 reduce, 3x3, 1x1 expand (each conv-BN, ReLU but the last), add, ReLU.

    He et al. 2015, Fig. 5 right. ``mid_channels`` defaults to ``out_channels / 4``. The paper (and its Caffe
    models) put the stride on the first 1x1 (``stride_in_1x1=True``); torchvision ("ResNet v1.5") puts it on
    the 3x3, which costs more MACs at the same parameters. Params with ``m`` = mid, ``g`` = groups:
    ``C_in m + 9 m^2 / g + m C_out + 4 m + 2 C_out`` (+ ``C_in C_out + 2 C_out`` with a projection).
    MACs: ``H_1 W_1 C_in m + H_out W_out (9 m^2 / g + m C_out)`` (+ ``H_out W_out C_in C_out``), where
    ``H_1 = H_out`` if the stride is on the 1x1, else ``H_in``.
    """

    expansion = 4
    conv_names = ("conv1", "conv2", "conv3")

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | bool = "B",
                 mid_channels: int | None = None, groups: int = 1, stride_in_1x1: bool = False,
                 act: ActLayer = "relu", zero_init_last: bool = False) -> None:
        super().__init__()
        _check_unit_args(in_channels, out_channels, stride)
        mid = _mid_channels(out_channels, mid_channels, self.expansion)
        check_channels(mid, mid, groups)
        stride1, stride3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNormAct(in_channels, mid, 1, stride1, act=act)
        self.conv2 = ConvNormAct(mid, mid, 3, stride3, groups=groups, act=act)
        self.conv3 = ConvNormAct(mid, out_channels, 1, act=None)
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride)
        self.act = make_activation(act)
        if zero_init_last:
            self.zero_init_last()


def norm_act(channels: int, act: ActLayer = "relu") -> nn.Sequential:
    """BN then activation (children ``bn``, ``act``): the pre-activation of a unit or a network's final one."""
    check_positive(channels, "channels")
    # the activation runs on the fresh BN output, never on a tensor someone else holds, so in place is safe
    return nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), act=make_activation(act)))


class _PreActUnit(_ResidualUnit):
    """Shared forward of the pre-activation units: x + F(BN-ReLU(x)), no activation after the addition."""

    def _set_shortcut(self, shortcut: str | bool, in_channels: int, out_channels: int, stride: int) -> None:
        self.shortcut = make_shortcut(shortcut, in_channels, out_channels, stride, norm=False)
        # He et al. 2016, Sec. 4 / resnet-1k-layers: a projection shortcut takes the BN-ReLU output shared with
        # the residual branch; an identity (or zero-padded) shortcut keeps the raw input, the "clean" path
        self.project_preact = isinstance(self.shortcut, ConvNormAct)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.preact(x)
        out = self._residual(pre)
        if self.shortcut is None:
            return out
        return out + self.shortcut(pre if self.project_preact else x)


class PreActBasicBlock(_PreActUnit):
    """Pre-activation basic unit: BN-ReLU, 3x3 conv, BN-ReLU, 3x3 conv, add (He et al. 2016, Fig. 4e).

    Params: ``2 C_in + 9 C_in C_out + 2 C_out + 9 C_out^2`` (+ ``C_in C_out`` with a projection, which has no BN
    of its own). MACs: ``H_out W_out (9 C_in C_out + 9 C_out^2)`` (+ ``H_out W_out C_in C_out``).
    ``zero_init_last`` zeroes the last convolution so the unit starts as its shortcut.
    """

    expansion = 1
    conv_names = ("conv1", "conv2")

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | bool = "B",
                 act: ActLayer = "relu", zero_init_last: bool = False) -> None:
        super().__init__()
        _check_unit_args(in_channels, out_channels, stride)
        self.preact = norm_act(in_channels, act)
        self.conv1 = ConvNormAct(in_channels, out_channels, 3, stride, bias=False, norm=False, act=None)
        self.conv2 = ConvNormAct(out_channels, out_channels, 3, act=act, preact=True)
        self._set_shortcut(shortcut, in_channels, out_channels, stride)
        if zero_init_last:
            self.zero_init_last()


class PreActBottleneck(_PreActUnit):
    """Pre-activation bottleneck: BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, add (He et al. 2016, Fig. 4e / Sec. 4).

    ``mid_channels`` defaults to ``out_channels / 4``; the stride sits on the 3x3 (timm's ``resnetv2``) or on
    the first 1x1 with ``stride_in_1x1``. Params with ``m`` = mid, ``g`` = groups:
    ``2 C_in + C_in m + 2 m + 9 m^2 / g + 2 m + m C_out`` (+ ``C_in C_out`` with a projection, no BN).
    MACs: ``H_1 W_1 C_in m + H_out W_out (9 m^2 / g + m C_out)`` (+ ``H_out W_out C_in C_out``).
    """

    expansion = 4
    conv_names = ("conv1", "conv2", "conv3")

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, shortcut: str | bool = "B",
                 mid_channels: int | None = None, groups: int = 1, stride_in_1x1: bool = False,
                 act: ActLayer = "relu", zero_init_last: bool = False) -> None:
        super().__init__()
        _check_unit_args(in_channels, out_channels, stride)
        mid = _mid_channels(out_channels, mid_channels, self.expansion)
        check_channels(mid, mid, groups)
        stride1, stride3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.preact = norm_act(in_channels, act)
        self.conv1 = ConvNormAct(in_channels, mid, 1, stride1, bias=False, norm=False, act=None)
        self.conv2 = ConvNormAct(mid, mid, 3, stride3, groups=groups, act=act, preact=True)
        self.conv3 = ConvNormAct(mid, out_channels, 1, act=act, preact=True)
        self._set_shortcut(shortcut, in_channels, out_channels, stride)
        if zero_init_last:
            self.zero_init_last()
