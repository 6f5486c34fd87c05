"""Factorise large convolutions: k x k -> stacked 3x3 (``StackedConv``), or n x n -> n x 1 + 1 x n (``AsymmetricConv``).

Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision" (arXiv:1512.00567):
Sec. 3.1 replaces a 5x5 by two 3x3 (18/25 of the weights at equal channels), Sec. 3.2 an n x n by
n x 1 + 1 x n (2n/n^2: 6/9 for 3x3, 14/49 for 7x7). Simonyan & Zisserman 2015, Sec. 2.3, make the same
argument for VGG (three 3x3 = 27 C^2 vs one 7x7 = 49 C^2).

The new layers are the blocks themselves, so a factorised unit is exactly what ``StackedConv`` /
``AsymmetricConv`` build: the stride sits on the first 3x3 (as in ``StackedConv`` and ResNet's units) and the
asymmetric pair runs n x 1 first (``AsymmetricConv``'s default). At stride 1 the output grid and the receptive
field are kept exactly. A strided k x k keeps its output grid and centres, but its field grows from k to
3 + (k - 3) s at dilation 1 (5x5 /2: 7), because the 3x3 after the first run on the output grid; that is also
why they cost fewer MACs than a stack with the stride on its last layer (cnnlab before issue 14).
"""

from __future__ import annotations

from torch import nn

from cnnlab.blocks import AsymmetricConv, StackedConv
from cnnlab.design.rewrite import (
    RewriteRecord,
    Skip,
    Where,
    conv_units,
    inner_activation,
    keep_activation,
    padding_of,
    rewrite,
    unit_parts,
    where_text,
)

STYLES = ("stack3x3", "asymmetric")


def factorize(model: nn.Module, style: str = "stack3x3", min_kernel: int = 5,
              where: Where = None) -> tuple[nn.Module, RewriteRecord]:
    """Replace every square ``k x k`` convolution with ``k >= min_kernel`` (matching ``where``) by smaller ones.

    ``style="stack3x3"``: a ``StackedConv`` of ``(k - 1) / 2`` 3x3 (odd ``k >= 5``); ``"asymmetric"``: an
    ``AsymmetricConv``, ``k x 1`` then ``1 x k`` (odd ``k >= 3``, stride 1). Intermediate widths are
    ``min(C_in, C_out)``. A ConvNormAct keeps its norm and order in every new layer; its activation stays
    where it was and the layers between get a copy of it, or ReLU when the unit (or a bare convolution) is
    linear. A convolution the blocks cannot rebuild with the same output grid is skipped with a note.
    Returns a new model and what was replaced; ``compare(model, new, record)`` measures what it bought.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES} ('stack3x3': k x k -> stacked 3x3, 'asymmetric': "
                         f"n x n -> n x 1 + 1 x n), got {style!r}")
    if isinstance(min_kernel, bool) or not isinstance(min_kernel, int) or min_kernel < 2:
        raise ValueError(f"min_kernel must be an int >= 2 (the smallest kernel to factorise), got {min_kernel!r}")
    options = {"style": style, "min_kernel": min_kernel, "where": where_text(where)}
    new_model, record = rewrite(model, conv_units(model, where, min_kernel), lambda unit: _factorized(unit, style),
                                transform="factorize", options=options)
    if not record.changed:
        smallest = max(min_kernel, 5) if style == "stack3x3" else min_kernel
        scope = "" if where is None else f" matching where={where_text(where)!r}"
        record = RewriteRecord("factorize", options, (), (
            f"no square convolution of kernel >= {smallest}{scope} to factorise; model unchanged", *record.notes))
    return new_model, record


def _factorized(unit: nn.Module, style: str) -> nn.Module:
    conv, kwargs, act = unit_parts(unit)
    k, stride = conv.kernel_size[0], conv.stride[0]
    (ph, pw), same = padding_of(conv)
    if k % 2 == 0 or k < (5 if style == "stack3x3" else 3):
        smallest = "an odd size >= 5 that stacked 3x3" if style == "stack3x3" else "an odd size that n x 1 + 1 x n"
        raise Skip(f"a {k}x{k} kernel is not {smallest} can cover exactly")
    if style == "asymmetric" and stride != 1:
        raise Skip(f"stride {stride}: AsymmetricConv has no stride; use style='stack3x3' for strided layers")
    depth = (k - 1) // 2 if style == "stack3x3" else 1
    if same:
        padding = None  # each block layer pads to keep its size: the grid is kept at any stride
    elif stride == 1 and ph % depth == 0 and pw % depth == 0 and (style == "stack3x3" or ph == pw == 0):
        padding = (ph // depth, pw // depth)  # the same total padding, spread evenly over the layers
    else:
        raise Skip(f"padding {(ph, pw)} at stride {stride}: the blocks keep the output grid only with the padding "
                   f"that keeps the size (or, at stride 1, one spread evenly over the layers)")
    # intermediate width min(C_in, C_out): equal channels give the papers' ratios, and a widening layer (an
    # Inception 5x5 branch, 16 -> 32) still gets cheaper instead of paying C_out^2 for its inner factors
    mid = min(conv.in_channels, conv.out_channels)
    build = dict(mid_channels=mid, padding=padding, act=inner_activation(act), **kwargs)
    if style == "stack3x3":
        new = StackedConv(conv.in_channels, conv.out_channels, k, stride, **build)
    else:
        new = AsymmetricConv(conv.in_channels, conv.out_channels, k, **build)
    return keep_activation(new, act, kwargs["preact"])
