"""Put a 1x1 reduction in front of every expensive convolution (the "bottleneck" of NIN / GoogLeNet).

Lin et al. 2014, "Network in Network"; Szegedy et al. 2015, "Going Deeper with Convolutions", Sec. 4: "1x1
convolutions are used to compute reductions before the expensive 3x3 and 5x5 convolutions". A ``k x k``
convolution from ``C_in`` to ``C_out`` becomes a 1x1 to ``R = C_in / reduction`` then the ``k x k`` from ``R``:
weights ``C_in R + R C_out k^2`` instead of ``C_in C_out k^2``. The 1x1 adds nothing to the receptive field.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.design._graph import (
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


def add_bottleneck(
    model: nn.Module,
    reduction: int = 4,
    where: Where = None,
    *,
    min_kernel: int = 3,
    input_size: tuple[int, int, int] | None = None,
) -> tuple[nn.Module, TransformReport]:
    """Insert a 1x1 reduction to ``C_in // reduction`` channels before every ungrouped ``k x k`` convolution.

    Only convolutions with a kernel side ``>= min_kernel`` that match ``where`` are rewritten, and only when the
    reduction cuts their weights (a 3-channel input has nothing to reduce). A ConvNormAct becomes
    ``reduce`` (1x1 ConvNormAct) + ``conv`` (the original geometry from ``R`` channels); a bare conv becomes
    ``reduce``, ``act`` (ReLU), ``conv``. Returns a new model and its report; the input is never modified.
    """
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 2:
        raise ValueError(f"reduction must be an int >= 2 (the 1x1 keeps C_in / reduction channels), "
                         f"got {reduction!r}")
    if isinstance(min_kernel, bool) or not isinstance(min_kernel, int) or min_kernel < 2:
        raise ValueError(f"min_kernel must be an int >= 2 (1x1 convolutions need no reduction), got {min_kernel!r}")
    match = compile_where(where)
    size = resolve_input_size(model, input_size)
    where_text = where if where is None or isinstance(where, str) else getattr(where, "pattern", repr(where))
    options = {"reduction": reduction, "min_kernel": min_kernel, "where": where_text}

    notes: list[str] = []
    chosen = []
    for unit in conv_units(model):
        conv = unit.conv
        if max(conv.kernel_size) < min_kernel or not unit_matches(unit, match):
            continue
        reduced = conv.in_channels // reduction
        kh, kw = conv.kernel_size
        if conv.groups != 1:
            notes.append(f"{unit.name}: skipped, a grouped convolution (groups={conv.groups}) is already cheap "
                         f"per channel; reduce its input explicitly if wanted")
        elif reduced < 1 or conv.in_channels * reduced + reduced * conv.out_channels * kh * kw >= (
                conv.in_channels * conv.out_channels * kh * kw):
            notes.append(f"{unit.name}: skipped, a 1x1 reduction of {conv.in_channels} channels by {reduction} "
                         f"would not cut its weights")
        else:
            chosen.append(unit)

    new_model = clone_model(model)
    replaced = []
    for unit in chosen:
        old = new_model.get_submodule(unit.name)
        new = _with_reduction(old, reduction)
        set_module(new_model, unit.name, new)
        replaced.append(Replacement(unit.name, describe(old), describe(new), param_count(old), param_count(new)))
    if not replaced:
        scope = "" if where is None else f" matching where={where_text!r}"
        notes.insert(0, f"no convolution of kernel >= {min_kernel}{scope} that a 1x1 reduction would make "
                        f"cheaper; model unchanged")
    return new_model, build_report("add_bottleneck", options, size, model, new_model, replaced, notes)


def _with_reduction(unit: nn.Module, reduction: int) -> nn.Sequential:
    conv = unit.conv if isinstance(unit, ConvNormAct) else unit
    in_channels, padding = conv.in_channels, explicit_padding(conv)
    reduced = in_channels // reduction
    if isinstance(unit, ConvNormAct):
        bn, act = norm_of(unit), activation_of(unit)
        common = dict(bias=conv.bias is not None, norm=bn is not None, preact=unit.preact,
                      norm_eps=bn.eps if bn is not None else 1e-5,
                      norm_momentum=bn.momentum if bn is not None else 0.1)
        reduce = ConvNormAct(in_channels, reduced, 1, **common)
        main = ConvNormAct(reduced, conv.out_channels, conv.kernel_size, conv.stride, padding, conv.dilation,
                           act=None, **common)
        main.conv.padding_mode = conv.padding_mode
        # the original activation stays where it was (after the k x k, or before the 1x1 when pre-activated);
        # the new position gets a copy of it, or ReLU when the unit had none (a linear 1x1 reduction followed
        # by a conv is just a low-rank conv)
        inner = copy.deepcopy(act) if act is not None else nn.ReLU(inplace=not unit.preact)
        if unit.preact:
            _set_act(reduce, copy.deepcopy(act))
            _set_act(main, inner)
        else:
            _set_act(reduce, inner)
            _set_act(main, copy.deepcopy(act))
        new = nn.Sequential(OrderedDict(reduce=reduce, conv=main))
        return like(new, conv.weight)
    reduce = nn.Conv2d(in_channels, reduced, 1, bias=conv.bias is not None)
    main = nn.Conv2d(reduced, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                     bias=conv.bias is not None, padding_mode=conv.padding_mode)
    return like(nn.Sequential(OrderedDict(reduce=reduce, act=nn.ReLU(inplace=True), conv=main)), conv.weight)


def _set_act(unit: ConvNormAct, act: nn.Module | None) -> None:
    """Put ``act`` in the activation slot of a ConvNormAct built with ``act="relu"`` or ``act=None``."""
    if "act" in unit._modules:
        del unit.act
    if act is None:
        return
    # rebuild the child order: conv-bn-act, or bn-act-conv when pre-activated
    children = OrderedDict(unit._modules)
    order = ("bn", "act", "conv") if unit.preact else ("conv", "bn", "act")
    children["act"] = act
    unit._modules.clear()
    for name in order:
        if name in children:
            unit._modules[name] = children[name]
