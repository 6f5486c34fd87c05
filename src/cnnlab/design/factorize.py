"""Factorise large convolutions: k x k -> stacked 3x3, or n x n -> 1 x n then n x 1.

Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision" (arXiv:1512.00567):
Sec. 3.1 replaces a 5x5 by two 3x3 (18/25 of the weights at equal channels), Sec. 3.2 an n x n by
1 x n + n x 1 (2n/n^2: 6/9 for 3x3, 14/49 for 7x7). Simonyan & Zisserman 2015, Sec. 2.3, make the same
argument for VGG (three 3x3 = 27 C^2 vs one 7x7 = 49 C^2).

The rewrite keeps the receptive field and the output grid exactly: the stride goes on the last layer of a
stack (a strided first layer would widen the field) and on the matching axis of an asymmetric pair, and the
original padding is distributed so that output pixel ``i`` still covers the same input window.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.design._graph import (
    ConvUnit,
    Where,
    activation_of,
    clone_model,
    compile_where,
    conv_units,
    describe,
    explicit_padding,
    like,
    norm_of,
    param_count,
    set_module,
    unit_matches,
)
from cnnlab.design.report import Replacement, TransformReport, build_report, resolve_input_size

STYLES = ("stack3x3", "asymmetric")


def factorize(
    model: nn.Module,
    style: str = "stack3x3",
    min_kernel: int = 5,
    where: Where = None,
    *,
    input_size: tuple[int, int, int] | None = None,
) -> tuple[nn.Module, TransformReport]:
    """Replace every square ``k x k`` convolution with ``k >= min_kernel`` (matching ``where``) by smaller ones.

    ``style="stack3x3"``: ``(k - 1) / 2`` stacked 3x3 (odd ``k >= 5``); ``"asymmetric"``: ``1 x k`` then
    ``k x 1`` (any ``k >= 2``). Intermediate widths are ``min(C_in, C_out)``; a ConvNormAct becomes a stack of
    ConvNormAct (norm and activation after each layer), a bare conv a stack of convs with ReLU between
    (Sec. 3.1: a nonlinearity between the factors works better than a linear factorisation).
    Returns a new model and its report; the input model is never modified.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES} ('stack3x3': k x k -> stacked 3x3, 'asymmetric': "
                         f"n x n -> 1 x n + n x 1), got {style!r}")
    if isinstance(min_kernel, bool) or not isinstance(min_kernel, int) or min_kernel < 2:
        raise ValueError(f"min_kernel must be an int >= 2 (the smallest kernel to factorise), got {min_kernel!r}")
    match = compile_where(where)
    size = resolve_input_size(model, input_size)
    options = {"style": style, "min_kernel": min_kernel, "where": _where_repr(where)}

    notes: list[str] = []
    chosen: list[ConvUnit] = []
    for unit in conv_units(model):
        if not unit_matches(unit, match):
            continue
        reason = _unsupported(unit.conv, style, min_kernel)
        if reason is None:
            chosen.append(unit)
        elif reason:
            notes.append(f"{unit.name}: skipped, {reason}")

    new_model = clone_model(model)
    replaced: list[Replacement] = []
    for unit in chosen:
        old = new_model.get_submodule(unit.name)
        new = _factorized(old, style)
        set_module(new_model, unit.name, new)
        replaced.append(Replacement(unit.name, describe(old), describe(new), param_count(old), param_count(new)))
    if not replaced:
        smallest = max(min_kernel, 5) if style == "stack3x3" else min_kernel
        scope = "" if where is None else f" matching where={_where_repr(where)!r}"
        notes.insert(0, f"no square convolution of kernel >= {smallest}{scope} to factorise; model unchanged")
    return new_model, build_report("factorize", options, size, model, new_model, replaced, notes)


def _where_repr(where: Where) -> str | None:
    if where is None or isinstance(where, str):
        return where
    return getattr(where, "pattern", None) or repr(where)


def _unsupported(conv: nn.Conv2d, style: str, min_kernel: int) -> str | None:
    """Why ``conv`` cannot be factorised ("" = silently out of scope, e.g. too small), or None if it can."""
    kh, kw = conv.kernel_size
    if kh != kw or kh < min_kernel:
        return ""
    if style == "stack3x3" and (kh < 5 or kh % 2 == 0):
        return f"a {kh}x{kw} kernel is not an odd size >= 5 that stacked 3x3 can cover exactly"
    if isinstance(conv.padding, str):
        if conv.padding == "same" and kh % 2 == 0:
            return "padding='same' with an even kernel pads asymmetrically"
    if conv.padding_mode != "zeros" and style == "stack3x3":
        return f"padding_mode={conv.padding_mode!r} is only kept exactly by the asymmetric style"
    return None


def _split_padding(total: int, layers: int, per_layer: int) -> list[int]:
    """Spread ``total`` padding over ``layers`` layers (up to ``per_layer`` each, the rest on the first).

    Any split with the same sum keeps the output grid and window alignment; ``per_layer`` each keeps every
    intermediate map at the input size (the "same" case).
    """
    pads = []
    remaining = total
    for _ in range(layers):
        pads.append(min(per_layer, remaining))
        remaining -= pads[-1]
    pads[0] += remaining
    return pads


def _layer_geometry(conv: nn.Conv2d, style: str) -> list[dict]:
    """Kernel, stride, padding, dilation of each factor, in order."""
    (k, _), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    ph, pw = explicit_padding(conv)
    if style == "asymmetric":
        # 1 x n first (torchvision's Inception-v3 order), each axis keeps its own stride, padding and dilation
        return [dict(kernel_size=(1, k), stride=(1, sw), padding=(0, pw), dilation=(1, dw)),
                dict(kernel_size=(k, 1), stride=(sh, 1), padding=(ph, 0), dilation=(dh, 1))]
    depth = (k - 1) // 2
    pads_h, pads_w = _split_padding(ph, depth, dh), _split_padding(pw, depth, dw)
    # stride on the LAST 3x3: a strided first layer would make the field 3 + 2s instead of k
    return [dict(kernel_size=(3, 3), stride=(sh, sw) if i == depth - 1 else (1, 1), padding=(pads_h[i], pads_w[i]),
                 dilation=(dh, dw)) for i in range(depth)]


def _factorized(unit: nn.Module, style: str) -> nn.Module:
    conv = unit.conv if isinstance(unit, ConvNormAct) else unit
    geometry = _layer_geometry(conv, style)
    # intermediate width min(C_in, C_out): equal channels give the papers' ratios, and a widening layer (an
    # Inception 5x5 branch, 16 -> 32) still gets cheaper instead of paying C_out^2 for its inner factors
    mid = min(conv.in_channels, conv.out_channels)
    widths = [conv.in_channels] + [mid] * (len(geometry) - 1) + [conv.out_channels]
    has_bias = conv.bias is not None
    if isinstance(unit, ConvNormAct):
        new = _factorized_block(unit, geometry, widths, has_bias)
    else:
        layers: list[tuple[str, nn.Module]] = []
        for i, geo in enumerate(geometry, start=1):
            layers.append((f"conv{i}", nn.Conv2d(widths[i - 1], widths[i], groups=conv.groups, bias=has_bias,
                                                 padding_mode=conv.padding_mode, **geo)))
            if i < len(geometry):
                layers.append((f"act{i}", nn.ReLU(inplace=True)))
        new = nn.Sequential(OrderedDict(layers))
    return like(new, conv.weight)


def _factorized_block(unit: ConvNormAct, geometry: list[dict], widths: list[int], has_bias: bool) -> nn.Sequential:
    """A ConvNormAct becomes ConvNormAct layers ``0, 1, ...`` of the same kind (as StackedConv names them)."""
    act, bn = activation_of(unit), norm_of(unit)
    layers = []
    last = len(geometry) - 1
    for i, geo in enumerate(geometry):
        layer = ConvNormAct(widths[i], widths[i + 1], groups=unit.conv.groups, bias=has_bias, norm=bn is not None,
                            act="relu", preact=unit.preact,
                            norm_eps=bn.eps if bn is not None else 1e-5,
                            norm_momentum=bn.momentum if bn is not None else 0.1, **geo)
        layer.conv.padding_mode = unit.conv.padding_mode
        # the original activation keeps its place (after the last conv, or before the first when pre-activated);
        # the new inner positions get the same activation, or ReLU when the original unit is linear
        original_position = (i == 0) if unit.preact else (i == last)
        if original_position:
            if act is None:
                del layer.act
            else:
                layer.act = copy.deepcopy(act)
        elif act is not None:
            layer.act = copy.deepcopy(act)
        layers.append(layer)
    return nn.Sequential(*layers)
