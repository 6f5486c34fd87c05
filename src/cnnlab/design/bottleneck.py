"""Put a 1x1 reduction in front of every expensive convolution (the "bottleneck" of NIN / GoogLeNet).

Lin et al. 2014, "Network in Network"; Szegedy et al. 2015, "Going Deeper with Convolutions", Sec. 4: "1x1
convolutions are used to compute reductions before the expensive 3x3 and 5x5 convolutions". A ``k x k``
convolution from ``C_in`` to ``C_out`` becomes the block ``ReducedConv``: a 1x1 to ``R = C_in / reduction`` then
the ``k x k`` from ``R``: weights ``C_in R + R C_out k^2`` instead of ``C_in C_out k^2``. The 1x1 adds nothing
to the receptive field.
"""

from __future__ import annotations

from torch import nn

from cnnlab.blocks import ReducedConv
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


def add_bottleneck(model: nn.Module, reduction: int = 4, where: Where = None, *,
                   min_kernel: int = 3) -> tuple[nn.Module, RewriteRecord]:
    """Insert a 1x1 reduction to ``C_in // reduction`` channels before every ungrouped ``k x k`` convolution.

    Only convolutions with a kernel side ``>= min_kernel`` that match ``where`` are rewritten, and only when the
    reduction cuts their weights (a 3-channel input has nothing to reduce). Each becomes a ``ReducedConv``
    (``reduce``, then ``conv`` with the original geometry from ``R`` channels) with the unit's norm and order;
    its activation stays where it was and the 1x1 gets a copy of it (ReLU when the unit is linear, as a bare
    convolution is). Returns a new model and what was replaced; the input is never modified.
    """
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 2:
        raise ValueError(f"reduction must be an int >= 2 (the 1x1 keeps C_in / reduction channels), "
                         f"got {reduction!r}")
    if isinstance(min_kernel, bool) or not isinstance(min_kernel, int) or min_kernel < 2:
        raise ValueError(f"min_kernel must be an int >= 2 (1x1 convolutions need no reduction), got {min_kernel!r}")
    options = {"reduction": reduction, "min_kernel": min_kernel, "where": where_text(where)}
    select = conv_units(model, where, min_kernel, square=False)
    new_model, record = rewrite(model, select, lambda unit: _reduced(unit, reduction), transform="add_bottleneck",
                                options=options)
    if not record.changed:
        scope = "" if where is None else f" matching where={where_text(where)!r}"
        record = RewriteRecord("add_bottleneck", options, (), (
            f"no convolution of kernel >= {min_kernel}{scope} that a 1x1 reduction would make cheaper; "
            f"model unchanged", *record.notes))
    return new_model, record


def _reduced(unit: nn.Module, reduction: int) -> nn.Module:
    conv, kwargs, act = unit_parts(unit)
    kh, kw = conv.kernel_size
    reduced = conv.in_channels // reduction
    if conv.groups != 1:
        raise Skip(f"a grouped convolution (groups={conv.groups}) is already cheap per channel; reduce its "
                   f"input explicitly if wanted")
    if reduced < 1 or conv.in_channels * reduced + reduced * conv.out_channels * kh * kw >= (
            conv.in_channels * conv.out_channels * kh * kw):
        raise Skip(f"a 1x1 reduction of {conv.in_channels} channels by {reduction} would not cut its weights")
    pad, same = padding_of(conv)
    if not same and pad != (0, 0):
        raise Skip(f"padding {pad}: ReducedConv pads its layers alike, which only a 1x1 with no padding allows")
    new = ReducedConv(conv.in_channels, conv.out_channels, reduced, conv.kernel_size, conv.stride[0],
                      padding=None if same else 0, act=inner_activation(act), **kwargs)
    return keep_activation(new, act, kwargs["preact"])
