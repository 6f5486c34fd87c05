"""The table of per-op formulas behind ``cnnlab.analyze``: {aten op -> kind and pure formula}.

The counting convention is stated once, in docs/analysis.md ("How it counts"); each formula here implements
one line of it, and ``CONVENTIONS`` is the one-paragraph form every report carries. In short: MACs of
convolutions and matrix products (FLOPs = 2 x MACs, equal to ``FlopCounterMode`` / 2), and the other ops
(bias, norm, activation, pooling, elementwise, reductions) in a column of their own.

``OPS`` maps an aten op's name (``func._opname``) to an ``OpRule``: its kind (which also tells the
receptive-field propagation what the op does to positions) and a pure formula ``(args, kwargs, out) ->
Cost``. Ops not in the table fall back on torch's own tags (views are free, pointwise ops elementwise,
reductions ...); an op with no rule is reported as "unknown cost", never dropped. ``analyze(...,
op_rules=...)`` adds rules for one call: ``rule_for`` (ops by name) and ``ModuleRule`` (module types).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import torch
from torch.utils.flop_counter import flop_registry

OTHER_KINDS = ("bias", "norm", "activation", "pool", "elementwise", "reduction")

# the convention in one paragraph: every report carries it (``CostReport.to_dict()["conventions"]``)
CONVENTIONS = (
    "MACs: multiply-accumulates of convolutions (H_out*W_out*C_out*C_in/groups*k_h*k_w per image) and "
    "matrix products (m*k*n); FLOPs = 2 x MACs. other_ops, never folded into MACs: bias 1 per output "
    "element, normalization 2 per element, activation and elementwise ops 1 per output element, pooling "
    "k_h*k_w per output element (adaptive / global pooling and reductions: 1 per input element). "
    "activation_bytes of a layer: bytes of its output; total: bytes of every tensor the forward allocates. "
    "Receptive field in input pixels, unclipped by the border: size, jump (stride product), start (centre "
    "of the first unit)."
)


class Cost(NamedTuple):
    """What one op (or one module, for a ``ModuleRule``) costs: MACs, and other ops of one ``OTHER_KINDS`` kind."""

    macs: int = 0
    kind: str = ""
    other: int = 0


FREE = Cost()
Formula = Callable[[Sequence[Any], dict[str, Any], Any], Cost]
# a user's rule for a module type: (module, inputs, output) -> Cost (or an int: MACs); it replaces the MACs and
# other ops of every op inside the module, while parameters, memory and receptive field are still measured
ModuleRule = Callable[[torch.nn.Module, tuple, Any], "Cost | int"]


class OpRule(NamedTuple):
    """How one aten op is counted: its ``kind`` (conv, mm, norm, max_pool, free, ...) and its ``formula``."""

    kind: str
    formula: Formula


# ------------------------------------------------------------------------------------------------ helpers
def arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    """An op argument by position, else by keyword, else ``default``."""
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def ints(value: Any, n: int, default: Any) -> tuple[int, ...]:
    """A kernel / stride / padding argument as ``n`` ints (one int or an empty list broadcast)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    return value * n if len(value) == 1 else value


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out


# ------------------------------------------------------------------------------------------------ formulas
def _free(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return FREE


def _conv(args: Sequence[Any], kwargs: dict[str, Any], out: Any, transposed_at: int | None = 6) -> Cost:
    x, w = args[0], args[1]
    transposed = transposed_at is not None and bool(arg(args, kwargs, transposed_at, "transposed", False))
    # transposed: every input position scatters into C_out / groups * k outputs
    macs = (x.numel() if transposed else out.numel()) * math.prod(w.shape[1:])
    return Cost(macs, "bias", out.numel() if arg(args, kwargs, 2, "bias") is not None else 0)


def _mm(args: Sequence[Any], kwargs: dict[str, Any], out: Any, at: int = 0, bias: str = "") -> Cost:
    a, b = args[at], args[at + 1]
    if a.dim() == 3:  # bmm / baddbmm
        macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    elif b.dim() == 1:  # mv / addmv: FlopCounterMode skips them, spectral norm's power iteration uses them
        macs = a.shape[0] * a.shape[1]
    else:
        macs = a.shape[0] * a.shape[1] * b.shape[1]
    return Cost(macs, bias, out.numel() if bias else 0)


def _dot(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return Cost(args[0].numel())


def _norm(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return Cost(0, "norm", 2 * _first(out).numel())


def _pool(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    kernel = ints(arg(args, kwargs, 1, "kernel_size"), args[0].dim() - 2, 1)
    return Cost(0, "pool", _first(out).numel() * math.prod(kernel))


def _adaptive(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return Cost(0, "pool", args[0].numel())


def _per_element(kind: str, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    first = _first(out)
    return Cost(0, kind, first.numel() if isinstance(first, torch.Tensor) else 0)


def _reduction(args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    src = args[0] if args and isinstance(args[0], torch.Tensor) else _first(out)
    return Cost(0, "reduction", src.numel())


def _registry(packet: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> Cost:
    return Cost(int(flop_registry[packet](*args, **kwargs, out_val=out)) // 2)


# ------------------------------------------------------------------------------------------------ the table
def _rules(kind: str, formula: Formula, names: str) -> dict[str, OpRule]:
    return dict.fromkeys(names.split(), OpRule(kind, formula))


OPS: dict[str, OpRule] = {
    **_rules("conv", _conv, "convolution _convolution convolution_overrideable _slow_conv2d_forward "
                            "cudnn_convolution mkldnn_convolution"),
    **_rules("conv", partial(_conv, transposed_at=None), "conv1d conv2d conv3d"),
    **_rules("mm", _mm, "mm bmm mv"),
    **_rules("mm", partial(_mm, at=1, bias="bias"), "addmm"),
    **_rules("mm", partial(_mm, at=1), "addmv"),
    **_rules("mm", partial(_mm, at=1, bias="elementwise"), "baddbmm"),
    **_rules("mm", _dot, "dot vdot"),
    **_rules("norm", _norm, "native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training "
                            "_native_batch_norm_legit_functional _batch_norm_with_update _batch_norm_no_update "
                            "native_layer_norm native_group_norm _fused_rms_norm batch_norm layer_norm group_norm "
                            "instance_norm"),
    **_rules("max_pool", _pool, "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices "
                                "max_pool3d_with_indices"),
    **_rules("avg_pool", _pool, "avg_pool1d avg_pool2d avg_pool3d"),
    **_rules("adaptive", _adaptive, "_adaptive_avg_pool1d _adaptive_avg_pool2d _adaptive_avg_pool3d "
                                    "adaptive_avg_pool1d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d"),
    # resampling costs nothing under this convention; nearest reads one input unit, (bi)linear two
    **_rules("upsample", _free, "upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact2d"),
    **_rules("upsample_linear", _free, "upsample_bilinear2d upsample_linear1d upsample_trilinear3d "
                                       "upsample_bicubic2d _upsample_bilinear2d_aa"),
    **_rules("activation", partial(_per_element, "activation"),
             "relu relu_ relu6 hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_ gelu gelu_ silu silu_ sigmoid "
             "sigmoid_ tanh tanh_ hardswish hardswish_ hardsigmoid hardsigmoid_ mish mish_ softplus prelu "
             "_prelu_kernel celu selu rrelu threshold glu log_sigmoid_forward _softmax _safe_softmax _log_softmax "
             "softmax log_softmax clamp_min clamp_min_ clamp clamp_"),
    **_rules("elementwise", partial(_per_element, "elementwise"),
             "native_dropout addcmul addcdiv lerp where masked_fill masked_fill_"),
    # data movement and bookkeeping: free; the kinds other than "free" say how they move positions
    **_rules("free", _free,
             "view _unsafe_view reshape expand squeeze unsqueeze flatten select split split_with_sizes chunk "
             "unbind narrow alias detach clone contiguous copy_ _to_copy to cat stack empty empty_like "
             "empty_strided zeros zeros_like ones ones_like full full_like new_empty new_empty_strided new_zeros "
             "new_ones new_full arange scalar_tensor lift_fresh lift_fresh_copy index index_select gather repeat "
             "roll flip fill_ fill zero_ bernoulli_ bernoulli channel_shuffle native_channel_shuffle unfold im2col "
             "col2im _reshape_alias view_as expand_as resize_ set_ as_strided_ _local_scalar_dense uniform_ "
             "normal_ random_ detach_ copy split_with_sizes_copy unbind_copy view_copy slice_copy unsqueeze_copy "
             "squeeze_copy expand_copy _reshape_copy pad _pad_circular _pad_enum unsafe_split "
             "unsafe_split_with_sizes unsafe_chunk t_copy"),
    # a layout change moves the grid elsewhere (N, H, W, C): the receptive field is not followed through it
    **_rules("layout", _free, "t transpose permute movedim swapaxes as_strided permute_copy transpose_copy"),
    **_rules("pad", _free, "constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d "
                           "replication_pad2d replication_pad3d"),
    **_rules("slice", _free, "slice"),
    **_rules("pixel_shuffle", _free, "pixel_shuffle"),
    **_rules("pixel_unshuffle", _free, "pixel_unshuffle"),
}
# ops without an entry: torch's tags decide (checked in this order)
_VIEW = OpRule("free", _free)
_POINTWISE = OpRule("elementwise", partial(_per_element, "elementwise"))
_REDUCTION = OpRule("reduction", _reduction)
UNKNOWN = OpRule("unknown", _free)


def rule_for(func: Any, user: dict[str, Formula] | None = None) -> OpRule:
    """The rule of an aten op overload: the table, else torch's tags and cost registry, else ``UNKNOWN``; a user's
    formula (keyed ``aten.cumsum.default``, ``aten.cumsum`` or ``cumsum``) replaces the formula."""
    rule = _default_rule(func)
    for key in (str(func), str(func._overloadpacket), func._opname) if user else ():
        if key in user:  # type: ignore[operator]
            return OpRule("custom" if rule is UNKNOWN else rule.kind, partial(_checked, user[key], key))  # type: ignore[index]
    return rule


def _default_rule(func: Any) -> OpRule:
    rule = OPS.get(func._opname)
    if rule is not None:
        return rule
    if func.is_view:
        return _VIEW
    if torch.Tag.pointwise in func.tags:
        return _POINTWISE
    if torch.Tag.reduction in func.tags:
        return _REDUCTION
    if func._overloadpacket in flop_registry:  # attention kernels and other ops torch knows the cost of
        return OpRule("registry", partial(_registry, func._overloadpacket))
    return UNKNOWN


def _checked(rule: Callable[..., Cost | int], what: str, *inputs: Any) -> Cost:
    """A user's rule applied and its result checked (an int is MACs)."""
    cost = rule(*inputs)
    if isinstance(cost, int) and not isinstance(cost, bool):
        return Cost(cost)
    if not isinstance(cost, tuple) or len(cost) != 3 or (cost[2] and cost[1] not in OTHER_KINDS):
        raise TypeError(f"the op rule for {what} returned {cost!r}; return an int (MACs) or "
                        f"cnnlab.analysis.ops.Cost(macs, kind, other) with kind one of {', '.join(OTHER_KINDS)}")
    return Cost(*cost)


class Window(NamedTuple):
    """The window of a convolution or pooling op: one int per spatial dimension in each of the first four."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    transposed: bool = False
    groups: int = 1


def window_of(kind: str, args: Sequence[Any], kwargs: dict[str, Any]) -> Window:
    """The window of a ``conv`` op (``aten.convolution``'s arguments) or a ``max_pool`` / ``avg_pool`` op."""
    if kind == "conv":
        w = args[1]
        n = w.dim() - 2
        return Window(tuple(w.shape[2:]), ints(arg(args, kwargs, 3, "stride"), n, 1),
                      ints(arg(args, kwargs, 4, "padding"), n, 0),
                      ints(arg(args, kwargs, 5, "dilation"), n, 1),
                      bool(arg(args, kwargs, 6, "transposed", False)), int(arg(args, kwargs, 8, "groups", 1)))
    n = args[0].dim() - 2
    kernel = ints(arg(args, kwargs, 1, "kernel_size"), n, 1)
    dilation = ints(arg(args, kwargs, 4, "dilation"), n, 1) if kind == "max_pool" else (1,) * n
    return Window(kernel, ints(arg(args, kwargs, 2, "stride"), n, kernel),
                  ints(arg(args, kwargs, 3, "padding"), n, 0), dilation)


def geometry(kind: str, args: Sequence[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Kernel, stride, padding (and channels, groups, dilation of a convolution) of a conv or pooling op."""
    win = window_of(kind, args, kwargs)
    out = {"op": kind, "kernel": list(win.kernel), "stride": list(win.stride), "padding": list(win.padding)}
    if kind == "conv":
        w = args[1]
        out.update(op="conv_transpose" if win.transposed else "conv", dilation=list(win.dilation),
                   groups=win.groups, in_channels=int(args[0].shape[1]),
                   out_channels=int(w.shape[1] * win.groups if win.transposed else w.shape[0]))
    return out


def module_cost(rule: ModuleRule, module: torch.nn.Module, inputs: tuple, output: Any) -> Cost:
    """A user's module rule applied to one call, its result checked."""
    return _checked(rule, type(module).__name__, module, inputs, output)
