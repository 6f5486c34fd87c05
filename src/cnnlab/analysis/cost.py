"""Exact per-layer cost of any ``nn.Module``: parameters, multiply-adds, other ops, memory, receptive field.

How it works: the model's structure is copied onto the ``meta`` device (shapes, no data; a zoo model is
built there directly), one forward pass runs under a ``TorchDispatchMode`` that sees every aten op
(``F.relu``, ``torch.cat``, ``x + y`` and ``torch.flatten`` as well as modules), and forward hooks on the
private copy attribute each op to the module stack it ran in. The user's module is never modified and
keeps no hooks.

Counting conventions (stated once; ``report.CONVENTIONS`` carries them into every report):

- MACs (multiply-accumulates) of a convolution: ``N * H_out * W_out * C_out * (C_in / groups) * k_h * k_w``;
  transposed: ``N * H_in * W_in * C_in * (C_out / groups) * k_h * k_w``; a matrix product ``m x k`` by
  ``k x n``: ``m * k * n`` (linear layers, ``matmul``, ``bmm``); attention kernels as FlopCounterMode / 2.
  FLOPs = 2 x MACs. These are exactly ``torch.utils.flop_counter.FlopCounterMode``'s count / 2, except
  that matrix-vector and dot products (``mv``, ``dot``: spectral norm's power iteration), which it skips,
  are counted here (``m * n`` and ``n``).
- Other ops, in a column of their own and never folded into MACs: bias 1 per output element;
  normalization 2 per element (the folded scale and shift); activation and elementwise ops (residual
  adds included) 1 per output element; pooling ``k_h * k_w`` per output element; adaptive pooling and
  reductions 1 per input element. Reshapes, copies, ``cat`` and padding cost nothing.
- Activation memory: a layer's ``activation_bytes`` is the size of its output; the total is the sum of
  every tensor the forward pass allocates (views and in-place results are not new memory).
- An op with no cost rule is listed in ``unknown_ops`` with "unknown cost" (never dropped); an op with
  no meta kernel runs once on zero-filled CPU tensors of the same shapes to learn its output shape.

How other counters differ (measured on ResNet-50 at 224, see ``docs/analysis.md``): fvcore reports MACs
under the name "flops" and adds batch norm and adaptive pooling to them (+0.55%), counts max/avg pooling
and adds as zero, and cannot run on the meta device; ptflops (module backend) adds bias and batch norm,
counts ReLU and pooling twice and misses ``x += y``; thop counts batch norm at 4 per element. ptflops and
thop match module types exactly, so a subclass of ``Conv2d`` (timm's ``StdConv2d``) goes uncounted, and
they, like torchinfo, switch the model to eval mode, so auxiliary heads are never counted. Here
auxiliary heads are counted when the model is analysed in training mode (``training=True``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry

from cnnlab._gc import gc_paused
from cnnlab.analysis import receptive_field as rfm
from cnnlab.analysis.receptive_field import ReceptiveField
from cnnlab.analysis.report import OTHER_KINDS, CostReport, LayerCost

_RF_ATTR = "_cnnlab_rf"
_UNKNOWN_RF = "unknown"

# ---------------------------------------------------------------------------------------------------------
# op tables: the op's overload-packet name (``func._opname``) decides its rule
_CONV_OPS = {"convolution", "_convolution", "convolution_overrideable", "_slow_conv2d_forward",
             "cudnn_convolution", "mkldnn_convolution", "conv2d", "conv1d", "conv3d"}
_MM_OPS = {"mm", "addmm", "bmm", "baddbmm", "mv", "addmv", "dot", "vdot"}
_NORM_OPS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
             "_native_batch_norm_legit_functional", "_batch_norm_with_update", "_batch_norm_no_update",
             "native_layer_norm", "native_group_norm", "_fused_rms_norm", "batch_norm", "layer_norm",
             "group_norm", "instance_norm"}
_POOL_OPS = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
             "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d"}
_ADAPTIVE_OPS = {"_adaptive_avg_pool2d", "_adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d",
                 "adaptive_avg_pool1d", "adaptive_max_pool1d", "_adaptive_avg_pool1d"}
_UPSAMPLE_OPS = {"upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_bilinear2d",
                 "upsample_linear1d", "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_nearest_exact2d",
                 "_upsample_bilinear2d_aa"}
_ACTIVATIONS = {"relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_",
                "gelu", "gelu_", "silu", "silu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "hardswish",
                "hardswish_", "hardsigmoid", "hardsigmoid_", "mish", "mish_", "softplus", "prelu",
                "_prelu_kernel", "celu", "selu", "rrelu", "threshold", "glu", "log_sigmoid_forward",
                "_softmax", "_safe_softmax", "_log_softmax", "softmax", "log_softmax", "clamp_min", "clamp_min_", "clamp", "clamp_"}
_ELEMENTWISE_EXTRA = {"native_dropout", "addcmul", "addcdiv", "lerp", "where", "masked_fill", "masked_fill_"}
# data movement and bookkeeping: known, and free under these conventions
_FREE_OPS = {"view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze", "unsqueeze",
             "flatten", "slice", "select", "split", "split_with_sizes", "chunk", "unbind", "narrow",
             "as_strided", "alias", "detach", "clone", "contiguous", "copy_", "_to_copy", "to", "cat", "stack",
             "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
             "full_like", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full", "arange",
             "scalar_tensor", "lift_fresh", "lift_fresh_copy", "constant_pad_nd", "index", "index_select",
             "gather", "repeat", "roll", "flip", "fill_", "fill", "zero_", "bernoulli_", "bernoulli",
             "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
             "replication_pad2d", "replication_pad3d", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
             "native_channel_shuffle", "unfold", "im2col", "col2im", "_reshape_alias", "view_as", "expand_as",
             "resize_", "set_", "as_strided_", "_local_scalar_dense", "uniform_", "normal_", "random_", "detach_", "copy",
             "split_with_sizes_copy", "unbind_copy", "view_copy", "slice_copy", "permute_copy", "t_copy",
             "transpose_copy", "unsqueeze_copy", "squeeze_copy", "expand_copy", "_reshape_copy", "pad",
             "_pad_circular", "_pad_enum", "unsafe_split", "unsafe_split_with_sizes", "unsafe_chunk"}


def _classify(func: Any) -> str:
    """The cost rule for an aten op: conv, mm, norm, pool, adaptive, upsample, activation, ..."""
    name = func._opname
    if name in _CONV_OPS:
        return "conv"
    if name in _MM_OPS:
        return {"addmv": "mv", "vdot": "dot"}.get(name, name)
    if name in _NORM_OPS:
        return "norm"
    if name in _POOL_OPS:
        return "pool"
    if name in _ADAPTIVE_OPS:
        return "adaptive"
    if name in _UPSAMPLE_OPS:
        return "upsample"
    if name in _FREE_OPS or func.is_view:
        return "free"
    if name in _ACTIVATIONS:
        return "activation"
    tags = func.tags
    if torch.Tag.pointwise in tags or name in _ELEMENTWISE_EXTRA:
        return "elementwise"
    if torch.Tag.reduction in tags:
        return "reduction"
    if func._overloadpacket in flop_registry:  # attention kernels and other ops torch knows the cost of
        return "registry"
    return "unknown"


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _tuple(value: Any, n: int, default: Any) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    return value * n if len(value) == 1 else value


def _numel(shape: Sequence[int]) -> int:
    return math.prod(shape)


# fast output shapes for ops whose meta kernels are slow Python decompositions (~1.5 ms per batch norm)
def _empty(shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    # torch.empty is a C++ call; empty_like / new_empty go through Python meta functions on this device
    return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)


def _fast_batch_norm(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple:
    x = args[0]
    name, overload = func._opname, func._overloadname
    if name == "_native_batch_norm_legit_no_training":
        training = False
    else:  # native_batch_norm / _native_batch_norm_legit: training at 5; the .no_stats overload: at 3
        index = 3 if overload == "no_stats" else 5
        training = bool(_arg(args, kwargs, index, "training", True))
    stats = x.shape[1] if training else 0
    return (_empty(x.shape, x), _empty((stats,), x), _empty((stats,), x))


def _fast_layer_norm(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple:
    x, normalized = args[0], _arg(args, kwargs, 1, "normalized_shape")
    stat_shape = tuple(x.shape[: x.dim() - len(normalized)]) + (1,) * len(normalized)
    return (_empty(x.shape, x), _empty(stat_shape, x), _empty(stat_shape, x))


def _fast_group_norm(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple:
    x = args[0]
    groups = int(_arg(args, kwargs, 6, "group"))
    return (_empty(x.shape, x), _empty((x.shape[0], groups), x), _empty((x.shape[0], groups), x))


def _fast_conv(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor:
    """Output of aten.convolution from the shape formula, with the same errors as the real kernel."""
    x, w = args[0], args[1]
    n = w.dim() - 2
    stride = _tuple(_arg(args, kwargs, 3, "stride"), n, 1)
    padding = _tuple(_arg(args, kwargs, 4, "padding"), n, 0)
    dilation = _tuple(_arg(args, kwargs, 5, "dilation"), n, 1)
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    groups = int(_arg(args, kwargs, 8, "groups", 1))
    if x.dim() != n + 2 or transposed:
        return func(*args, **kwargs)  # unbatched input or transposed: let the meta kernel decide
    if x.shape[1] != w.shape[1] * groups:
        raise RuntimeError(f"expected input {list(x.shape)} to have {w.shape[1] * groups} channels, "
                           f"but got {x.shape[1]} channels instead (weight {list(w.shape)}, groups {groups})")
    spatial = []
    for size, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, padding, dilation):
        out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if out <= 0:
            raise RuntimeError(f"Calculated output size {out} is too small: input {size} (padded by {p}), "
                               f"kernel {k}, dilation {d}, stride {s}")
        spatial.append(out)
    return torch.empty((x.shape[0], w.shape[0], *spatial), dtype=x.dtype, device=x.device)


_FAST_UNARY = {"relu", "relu6", "hardtanh", "leaky_relu", "elu", "gelu", "silu", "sigmoid", "tanh", "hardswish",
               "hardsigmoid", "mish", "clamp_min", "clamp"}
_FAST_BINARY = {"add", "sub", "mul", "div"}


def _fast_pointwise(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> torch.Tensor:
    """Float elementwise ops: output shape by broadcasting; in-place variants return their input."""
    if func._schema.is_mutable:
        if kwargs.get("out") is None and isinstance(args[0], torch.Tensor):
            other = args[1] if len(args) > 1 and isinstance(args[1], torch.Tensor) else None
            if other is None or (other.dim() <= args[0].dim() and all(
                    o in (1, s) for o, s in zip(reversed(other.shape), reversed(args[0].shape)))):
                return args[0]
        return func(*args, **kwargs)
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if kwargs or not tensors or any(not t.is_floating_point() or not t.is_meta for t in tensors) or \
            len({t.dtype for t in tensors}) != 1:
        return func(*args, **kwargs)
    shape = list(tensors[0].shape)
    for t in tensors[1:]:
        other = list(t.shape)
        if len(other) > len(shape):
            shape, other = other, shape
        offset = len(shape) - len(other)
        for i, size in enumerate(other):
            mine = shape[offset + i]
            if mine != size and 1 not in (mine, size):
                return func(*args, **kwargs)  # a shape mismatch: the real kernel raises its own error
            shape[offset + i] = size if mine == 1 else mine
    return torch.empty(shape, dtype=tensors[0].dtype, device=tensors[0].device)


_FAST: dict[str, Callable[[Any, Sequence[Any], dict[str, Any]], Any]] = {
    "convolution": _fast_conv,
    **{name: _fast_pointwise for name in _FAST_UNARY | {n + "_" for n in _FAST_UNARY} | _FAST_BINARY
       | {n + "_" for n in _FAST_BINARY}},
    "native_batch_norm": _fast_batch_norm,
    "_native_batch_norm_legit": _fast_batch_norm,
    "_native_batch_norm_legit_no_training": _fast_batch_norm,
    "native_layer_norm": _fast_layer_norm,
    "native_group_norm": _fast_group_norm,
}


class _Record:
    """Mutable counters of one module while tracing."""

    __slots__ = ("name", "module", "calls", "input_shape", "output_shape", "macs", "other", "self_macs",
                 "self_other", "out_bytes", "rf", "geometry", "unknown")

    def __init__(self, name: str, module: nn.Module) -> None:
        self.name, self.module = name, module
        self.calls = 0
        self.input_shape: Any = None
        self.output_shape: Any = None
        self.macs = 0
        self.other = dict.fromkeys(OTHER_KINDS, 0)
        self.self_macs = 0
        self.self_other = 0
        self.out_bytes = 0
        self.rf: ReceptiveField | None = None
        self.geometry: dict[str, Any] | None = None
        self.unknown: list[str] = []


class EmptyOutputError(ValueError):
    """A layer would produce an empty output: the input is too small for the network."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(message)
        self.layer = layer


class _Tracer(TorchDispatchMode):
    """Sees every aten op of one forward pass; costs it, attributes it, propagates receptive fields."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # this mode never runs under torch.compile; without this, torch wraps every dispatch call in a
        # dynamo-disable guard that costs ~0.1 ms an op (a third of the trace time of a 1000-layer net)
        return False

    def __init__(self, state_ids: set[int], spatial_dims: int, unknown: dict[tuple[str, str], dict]) -> None:
        super().__init__()
        self.stack: list[_Record] = []
        self.state_ids = state_ids
        self.spatial_dims = spatial_dims
        self.tensor_dims = spatial_dims + 2
        self.unknown = unknown
        self.total_macs = 0
        self.total_other = dict.fromkeys(OTHER_KINDS, 0)
        self.alloc_bytes = 0
        self.kinds: dict[Any, tuple] = {}

    # -------------------------------------------------------------- dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (torch's signature)
        kwargs = kwargs or {}
        info = self.kinds.get(func)
        if info is None:  # per op overload, once: its rule, name, fast path and whether it allocates
            info = self.kinds[func] = (_classify(func), func._opname, _FAST.get(func._opname),
                                       not func.is_view and not func._schema.is_mutable)
        kind, name, fast, allocates = info
        if fast is not None:
            out = fast(func, args, kwargs)
        else:
            try:
                out = func(*args, **kwargs)
            except NotImplementedError:
                out = self._run_on_cpu(func, args, kwargs)
        macs, other_kind, other = self._cost(kind, name, func, args, kwargs, out)
        record = self.stack[-1] if self.stack else None
        if macs or other:
            self.total_macs += macs
            if other:
                self.total_other[other_kind] += other
            for r in self.stack:
                r.macs += macs
                if other:
                    r.other[other_kind] += other
            if record is not None:
                record.self_macs += macs
                record.self_other += other
        if kind == "unknown":
            self._note_unknown(func, record, out)
        if kind in ("conv", "pool") and record is not None and record.geometry is None:
            record.geometry = self._geometry(kind, name, args, kwargs)
        if allocates:
            for t in (out if isinstance(out, (tuple, list)) else (out,)):
                if isinstance(t, torch.Tensor):
                    self.alloc_bytes += t.numel() * t.element_size()
        self._propagate_rf(kind, name, func, args, kwargs, out)
        return out

    def _run_on_cpu(self, func, args, kwargs):  # noqa: ANN001
        def real(t: Any) -> Any:
            return torch.zeros(t.shape, dtype=t.dtype) if isinstance(t, torch.Tensor) else t

        def meta(t: Any) -> Any:
            return torch.empty_like(t, device="meta") if isinstance(t, torch.Tensor) else t

        with torch._C._DisableTorchDispatch():  # the op runs outside this mode on plain CPU tensors
            return tree_map(meta, func(*tree_map(real, args), **tree_map(real, kwargs)))

    def _note_unknown(self, func, record: _Record | None, out: Any) -> None:  # noqa: ANN001
        layer = record.name if record is not None else ""
        key = (str(func), layer)
        entry = self.unknown.get(key)
        if entry is None:
            first = out[0] if isinstance(out, (tuple, list)) and out else out
            shape = list(first.shape) if isinstance(first, torch.Tensor) else None
            entry = self.unknown[key] = {"op": str(func), "layer": layer, "count": 0, "cost": "unknown cost",
                                         "output_shape": shape}
            if record is not None:
                record.unknown.append(str(func))
        entry["count"] += 1

    # -------------------------------------------------------------- costs
    def _cost(self, kind: str, name: str, func, args, kwargs, out) -> tuple[int, str, int]:  # noqa: ANN001
        if kind == "free" or kind == "unknown" or kind == "upsample":
            return 0, "", 0
        if kind == "conv":
            x, w = args[0], args[1]
            transposed = bool(_arg(args, kwargs, 6, "transposed", False)) if name != "conv2d" else False
            y = out
            if transposed:  # every input position scatters into C_out / groups * k outputs
                macs = _numel(x.shape) * _numel(w.shape[1:])
            else:
                macs = y.numel() * _numel(w.shape[1:])
            bias = _arg(args, kwargs, 2, "bias")
            return macs, "bias", y.numel() if bias is not None else 0
        if kind == "mm":
            a, b = args[0], args[1]
            return a.shape[0] * a.shape[1] * b.shape[1], "", 0
        if kind == "addmm":
            a, b = args[1], args[2]
            return a.shape[0] * a.shape[1] * b.shape[1], "bias", out.numel()
        if kind == "mv":  # matrix-vector products (spectral norm's power iteration): FlopCounterMode skips them
            a = args[1] if name == "addmv" else args[0]
            return a.shape[0] * a.shape[1], "", 0
        if kind == "dot":
            return args[0].numel(), "", 0
        if kind == "bmm":
            a, b = args[0], args[1]
            return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], "", 0
        if kind == "baddbmm":
            a, b = args[1], args[2]
            return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2], "elementwise", out.numel()
        first = out[0] if isinstance(out, (tuple, list)) else out
        if kind == "norm":
            return 0, "norm", 2 * first.numel()
        if kind == "pool":
            k = _tuple(_arg(args, kwargs, 1, "kernel_size"), args[0].dim() - 2, 1)
            return 0, "pool", first.numel() * _numel(k)
        if kind == "adaptive":
            return 0, "pool", args[0].numel()
        if kind in ("activation", "elementwise"):
            if func._schema.is_mutable and args and isinstance(args[0], torch.Tensor) \
                    and id(args[0]) in self.state_ids:
                return 0, "", 0  # a running-statistics update (num_batches_tracked += 1): bookkeeping
            return 0, kind, first.numel() if isinstance(first, torch.Tensor) else 0
        if kind == "reduction":
            src = args[0] if args and isinstance(args[0], torch.Tensor) else first
            return 0, "reduction", src.numel()
        if kind == "registry":
            flops = flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
            return int(flops) // 2, "", 0
        return 0, "", 0

    def _geometry(self, kind: str, name: str, args, kwargs) -> dict[str, Any]:  # noqa: ANN001
        n = args[0].dim() - 2
        if kind == "conv":
            w = args[1]
            transposed = bool(_arg(args, kwargs, 6, "transposed", False))
            groups = int(_arg(args, kwargs, 8, "groups", 1))
            c_in = args[0].shape[1]
            return {"op": "conv_transpose" if transposed else "conv", "kernel": list(w.shape[2:]),
                    "stride": list(_tuple(_arg(args, kwargs, 3, "stride"), n, 1)),
                    "padding": list(_tuple(_arg(args, kwargs, 4, "padding"), n, 0)),
                    "dilation": list(_tuple(_arg(args, kwargs, 5, "dilation"), n, 1)),
                    "groups": groups, "in_channels": int(c_in),
                    "out_channels": int(w.shape[1] * groups if transposed else w.shape[0])}
        kernel = _tuple(_arg(args, kwargs, 1, "kernel_size"), n, 1)
        return {"op": "max_pool" if name.startswith("max") else "avg_pool", "kernel": list(kernel),
                "stride": list(_tuple(_arg(args, kwargs, 2, "stride"), n, kernel)),
                "padding": list(_tuple(_arg(args, kwargs, 3, "padding"), n, 0))}

    # -------------------------------------------------------------- receptive field
    # A tensor derived from the input carries (field, on_grid): on_grid means its last dims are the image
    # grid (N, C, H, W); a tensor that lost the grid (flattened, pooled away) carries the field of a unit
    # that sees the whole map and never widens again. A layout change that keeps the grid somewhere else
    # (a permute to N, H, W, C) is not followed: the field becomes unknown rather than wrong.
    def _propagate_rf(self, kind: str, name: str, func, args, kwargs, out) -> None:  # noqa: ANN001
        fields = []
        for a in (*args, *kwargs.values()):
            for t in (a if isinstance(a, (list, tuple)) else (a,)):
                if isinstance(t, torch.Tensor):
                    f = getattr(t, _RF_ATTR, None)
                    if f is not None:
                        if f is _UNKNOWN_RF:
                            self._set_rf(out, _UNKNOWN_RF)
                            return
                        fields.append((f[0], f[1], t))
        if not fields:
            return
        if len(fields) == 1 and kind in _SAME_GRID_KINDS:
            entry = getattr(fields[0][2], _RF_ATTR)
            first = out[0] if isinstance(out, (tuple, list)) else out
            if isinstance(first, torch.Tensor) and first.shape[2:] == fields[0][2].shape[2:] \
                    and first.dim() == fields[0][2].dim():
                if first is not fields[0][2]:  # an in-place op returns its input, which already has it
                    self._set_rf(first, entry)
                return  # per-position ops (activation, norm, bias-free elementwise): the field is unchanged
        outs = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
        if not outs:
            return
        y = outs[0]
        x = args[0] if args and isinstance(args[0], torch.Tensor) else fields[0][2]
        x_entry = getattr(x, _RF_ATTR, None)
        x_field, x_grid = (x_entry if isinstance(x_entry, tuple) else (fields[0][0], False))
        x_grid = x_grid and x.dim() == self.tensor_dims
        nd = self.spatial_dims
        result: Any
        if kind in ("conv", "pool", "adaptive", "upsample") and not x_grid:
            result = _UNKNOWN_RF  # a window op on a tensor whose grid was not followed
        elif kind == "conv":
            kernel = tuple(args[1].shape[2:])
            stride = _tuple(_arg(args, kwargs, 3, "stride"), nd, 1)
            padding = _tuple(_arg(args, kwargs, 4, "padding"), nd, 0)
            dilation = _tuple(_arg(args, kwargs, 5, "dilation"), nd, 1)
            transposed = bool(_arg(args, kwargs, 6, "transposed", False))
            fn = rfm.transposed_window if transposed else rfm.window
            result = (fn(x_field, kernel, stride, padding, dilation), True)
        elif kind == "pool":
            kernel = _tuple(_arg(args, kwargs, 1, "kernel_size"), nd, 1)
            stride = _tuple(_arg(args, kwargs, 2, "stride"), nd, kernel)
            padding = _tuple(_arg(args, kwargs, 3, "padding"), nd, 0)
            dilation = _tuple(_arg(args, kwargs, 4, "dilation"), nd, 1) if name.startswith("max") else (1,) * nd
            result = (rfm.window(x_field, kernel, stride, padding, dilation), True)
        elif kind == "adaptive":
            result = (rfm.adaptive_window(x_field, tuple(x.shape[2:]), tuple(y.shape[2:])), True)
        elif kind == "upsample" or (name == "pixel_shuffle" and x_grid):  # pixel shuffle: nearest upsampling of positions
            scales = [o / i for o, i in zip(y.shape[2:], x.shape[2:])]
            result = (rfm.resized(x_field, scales, bilinear=kind == "upsample" and "nearest" not in name), True)
        elif name == "pixel_unshuffle" and x_grid:
            r = int(_arg(args, kwargs, 1, "downscale_factor"))
            result = (rfm.window(x_field, (r,) * nd, (r,) * nd, (0,) * nd, (1,) * nd), True)
        elif name == "slice" and x_grid and int(_arg(args, kwargs, 1, "dim", 0)) % x.dim() >= 2:
            dim = int(_arg(args, kwargs, 1, "dim", 0)) % x.dim()
            begin = _arg(args, kwargs, 2, "start") or 0
            size = x.shape[dim]
            begin = max(begin + size, 0) if begin < 0 else min(begin, size)
            result = (rfm.shifted(x_field, dim - 2, begin, int(_arg(args, kwargs, 4, "step", 1))), True)
        elif name in _PAD_OPS and x_grid:
            pads = list(_arg(args, kwargs, 1, "pad"))
            shifted = x_field
            for i in range(0, len(pads), 2):
                dim = x.dim() - 1 - i // 2
                if dim >= 2 and pads[i]:
                    shifted = rfm.shifted(shifted, dim - 2, -pads[i])
            result = (shifted, True)
        elif kind == "reduction" and x_grid:
            dims = _arg(args, kwargs, 1, "dim")
            dims = range(x.dim()) if dims is None or (isinstance(dims, (list, tuple)) and not dims) else (
                [dims] if isinstance(dims, int) else dims)
            spatial = sorted({d % x.dim() - 2 for d in dims if d % x.dim() >= 2})
            if not spatial:
                result = (x_field, y.dim() == x.dim())
            else:
                extent = [x.shape[2 + d] if d in spatial else 1 for d in range(nd)]
                on_grid = y.dim() == x.dim() and len(spatial) < nd
                result = (rfm.global_field(x_field, extent), on_grid or y.dim() == x.dim())
        else:
            result = self._combine(kind, name, fields, y)
        self._set_rf(out, result)

    def _combine(self, kind: str, name: str, fields: list, y: torch.Tensor) -> Any:
        """Ops that move no window: the union of the inputs' fields; losing the grid mixes every position."""
        y_grid = tuple(y.shape[2:]) if y.dim() == self.tensor_dims else None
        parts = []
        grid_jump = None
        on_grid = False
        for f, grid_flag, t in fields:
            grid = tuple(t.shape[2:]) if grid_flag and t.dim() == self.tensor_dims else None
            if grid is None:
                parts.append(f)
            elif grid == y_grid or (_numel(grid) == 1 and y_grid is not None):
                parts.append(f)
                if grid == y_grid:
                    on_grid = True
                    if grid_jump is None:
                        grid_jump = f.jump
            elif kind in ("free", "reduction") and name not in _LAYOUT_OPS:
                parts.append(rfm.global_field(f, grid))  # flattening: what follows sees every position
            else:
                return _UNKNOWN_RF  # the grid is resampled or moved by an op without a rule here
        merged = rfm.union(parts)
        if grid_jump is not None and len(parts) > 1:
            merged = ReceptiveField(merged.size, grid_jump, merged.start)
        return (merged, on_grid)

    @staticmethod
    def _set_rf(out: Any, field: Any) -> None:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter):
                try:
                    setattr(t, _RF_ATTR, field)
                except (AttributeError, RuntimeError):
                    pass


# modules that normalise across channels only, implemented with views that hide the grid from the op rules
_PER_POSITION_MODULES = (nn.LocalResponseNorm, nn.CrossMapLRN2d)
_SAME_GRID_KINDS = {"activation", "elementwise", "norm"}
_PAD_OPS = {"constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
            "replication_pad2d", "replication_pad3d"}
_LAYOUT_OPS = {"permute", "transpose", "t", "movedim", "swapaxes", "as_strided", "permute_copy", "transpose_copy"}


# ---------------------------------------------------------------------------------------------------------
def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):  # the common cases first: pytree is ~50 us a call
        return [value]
    if isinstance(value, (tuple, list)) and all(isinstance(v, torch.Tensor) for v in value):
        return list(value)
    flat, _ = tree_flatten(value)
    return [t for t in flat if isinstance(t, torch.Tensor)]


def _shapes(value: Any) -> Any:
    tensors = _tensors(value)
    if not tensors:
        return None
    if len(tensors) == 1:
        return list(tensors[0].shape)
    return [list(t.shape) for t in tensors]


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` on the meta device: same structure, hooks and ``requires_grad``, no data copied.

    Each module is cloned as a new object of the same class whose attribute dict is a shallow copy, with
    parameters and buffers replaced by meta tensors of the same shape and dtype (shared ones stay shared)
    and its dicts (submodules, hooks) copied, so hooks added to the copy never reach the original. This
    is ~10x faster than ``copy.deepcopy`` on a 1000-layer network and never touches the weights.
    """
    tensors: dict[int, Any] = {}
    clones: dict[int, nn.Module] = {}

    def meta(t: torch.Tensor | None) -> Any:
        if t is None:
            return None
        out = tensors.get(id(t))
        if out is None:
            out = torch.empty(t.shape, dtype=t.dtype, device="meta")
            if isinstance(t, nn.Parameter):
                out = nn.Parameter(out, requires_grad=t.requires_grad)
            tensors[id(t)] = out
        return out

    def clone(m: nn.Module) -> nn.Module:
        done = clones.get(id(m))
        if done is not None:
            return done
        new = object.__new__(type(m))
        clones[id(m)] = new
        state = {k: (v.copy() if type(v) in (dict, OrderedDict) else v) for k, v in m.__dict__.items()}
        state["_parameters"] = {k: meta(v) for k, v in m._parameters.items()}
        state["_buffers"] = {k: meta(v) for k, v in m._buffers.items()}
        state["_modules"] = {k: (clone(v) if v is not None else None) for k, v in m._modules.items()}
        new.__dict__.update(state)
        return new

    return clone(module)


def _resolve(model_or_name: nn.Module | str) -> tuple[nn.Module, str, tuple[int, ...] | None, bool]:
    """(meta model, display name, default input size or None, whether it is a fresh zoo model)."""
    if isinstance(model_or_name, str):
        from cnnlab.models import create_model, model_card

        card = model_card(model_or_name)
        try:
            with torch.device("meta"):
                model = create_model(model_or_name)
        except (NotImplementedError, RuntimeError):
            model = meta_copy(create_model(model_or_name))  # an init that needs data: build, then copy
        return model, model_or_name, tuple(card.input_size), True
    if not isinstance(model_or_name, nn.Module):
        raise TypeError(f"analyze expects an nn.Module or a zoo model name, got {type(model_or_name).__name__}")
    name = getattr(model_or_name, "model_name", "") or type(model_or_name).__name__
    return meta_copy(model_or_name), name, None, False


def _runs(model: nn.Module, size: tuple[int, ...], batch_size: int, dtype: torch.dtype) -> bool:
    try:
        with torch.no_grad():
            out = model(torch.empty(batch_size, *size, device="meta", dtype=dtype))
        return all(t.numel() > 0 for t in _tensors(out))
    except Exception:  # noqa: BLE001 - any failure means "this size does not fit"
        return False


def smallest_input(model: nn.Module, input_size: Sequence[int], batch_size: int = 1,
                   dtype: torch.dtype = torch.float32, limit: int = 8192) -> int | None:
    """The smallest square spatial size (H = W) at which ``model`` runs, by search; None if none up to ``limit``."""
    channels = tuple(input_size[:1])
    spatial = len(input_size) - 1

    def fits(s: int) -> bool:
        return _runs(model, channels + (s,) * spatial, batch_size, dtype)

    hi = max(input_size[1:])
    while not fits(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = 0  # fits(lo) is False for lo = 0 by definition
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


def analyze(model_or_name: nn.Module | str, input_size: Sequence[int] | int | None = None, batch_size: int = 1,
            dtype: torch.dtype = torch.float32, training: bool | None = None) -> CostReport:
    """Per-layer parameters, MACs, other ops, activation memory and receptive field, on the meta device.

    ``model_or_name``: any ``nn.Module`` (left untouched) or a zoo name (built on meta directly).
    ``input_size``: (C, H, W) without the batch; default the zoo card's size, else 3x224x224. The sizes
    torchinfo users type work too: with the batch, ``(1, 3, 224, 224)`` (the first entry becomes
    ``batch_size``), and one int, ``224``, for a square image with the model's input channels. A tuple is
    taken to include the batch when it is one entry longer than the model's first convolution (or linear
    layer) takes: Conv2d 4, Conv1d 3, Conv3d 5, Linear 2.
    ``training``: analyse in training mode (auxiliary heads run and are counted); default: the module's
    current mode, eval for zoo names.
    """
    with gc_paused():
        return _analyze(model_or_name, input_size, batch_size, dtype, training)


def _analyze(model_or_name: nn.Module | str, input_size: Sequence[int] | None, batch_size: int,
             dtype: torch.dtype, training: bool | None) -> CostReport:
    model, name, default_size, fresh = _resolve(model_or_name)
    input_size, batch_size = _sizes(model, input_size, batch_size)
    size = tuple(int(v) for v in (input_size if input_size is not None else default_size or (3, 224, 224)))
    if len(size) < 1 or any(v <= 0 for v in size):
        raise ValueError(f"input_size must be (C, H, W) (or (features,), (C, L), (C, D, H, W)) of positive "
                         f"ints without the batch, got {size}")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if training is None:
        training = False if fresh else model.training
    model.train(training)
    if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
        model.to(dtype)  # the private meta copy: floating parameters and buffers take the analysed dtype
    return _trace(model, name, size, batch_size, dtype, training)


def _input_layer(model: nn.Module) -> tuple[int, int] | None:
    """(spatial dims, input channels) of the first convolution or linear layer (0 dims for a linear), or None."""
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return len(m.kernel_size), m.in_channels
        if isinstance(m, nn.Linear):
            return 0, m.in_features
    return None


def _sizes(model: nn.Module, input_size: Sequence[int] | int | None,
           batch_size: int) -> tuple[tuple[int, ...] | None, int]:
    """(input size without the batch, batch size) from what the user typed: (C, H, W), (N, C, H, W) or H."""
    if input_size is None:
        return None, batch_size
    first = _input_layer(model)
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        channels = getattr(model, "in_channels", None) or (first[1] if first else 3)
        dims = first[0] if first else 2
        return ((input_size,) if dims == 0 else (int(channels),) + (input_size,) * dims), batch_size
    size = tuple(input_size)
    expected = (first[0] + 1) if first else 3  # entries without the batch: C + spatial dims (Linear: features)
    if len(size) == expected + 1:
        if batch_size not in (1, size[0]):
            raise ValueError(f"input_size {size} includes a batch of {size[0]} but batch_size={batch_size}; give "
                             f"one of them")
        return size[1:], int(size[0])
    return size, batch_size


def _trace(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
           training: bool) -> CostReport:
    names = {m: n for n, m in model.named_modules(remove_duplicate=True)}
    records: dict[str, _Record] = {}
    order: list[_Record] = []
    state_ids = set()
    for m in names:  # one walk over the plain dicts: ~5x cheaper than parameters() + buffers() generators
        state_ids.update(id(t) for t in m._parameters.values() if t is not None)
        state_ids.update(id(t) for t in m._buffers.values() if t is not None)
    unknown: dict[tuple[str, str], dict] = {}
    tracer = _Tracer(state_ids, len(size) - 1, unknown)
    carried: dict[int, Any] = {}

    def pre_hook(module: nn.Module, inputs: Any) -> None:
        qual = names[module]
        record = records.get(qual)
        if record is None:
            record = records[qual] = _Record(qual, module)
            order.append(record)
            record.input_shape = _shapes(inputs)
        record.calls += 1
        tracer.stack.append(record)

    def carry_hook(module: nn.Module, inputs: Any) -> None:
        first = _tensors(inputs)
        carried[id(module)] = getattr(first[0], _RF_ATTR, None) if first else None

    def post_hook(module: nn.Module, inputs: Any, output: Any) -> None:
        record = tracer.stack.pop()
        outs = _tensors(output)
        if record.calls == 1:
            record.output_shape = _shapes(output)
            record.out_bytes = sum(t.numel() * t.element_size() for t in outs)
        if outs and all(t.numel() == 0 for t in outs) and any(t.numel() for t in _tensors(inputs)):
            # a layer that turns a non-empty input into nothing: the input is too small
            raise EmptyOutputError(record.name, f"layer {record.name or '(model)'} ({type(module).__name__}) "
                                                f"produces an empty output {list(outs[0].shape)}")
        if id(module) in carried and outs:
            # the op-level route through a 5-D view would lose the grid; the module maps position to position
            tracer._set_rf(outs[0], carried.pop(id(module)))
        entry = getattr(outs[0], _RF_ATTR, None) if outs else None
        field = entry[0] if isinstance(entry, tuple) else None
        if field is not None and (record.rf is None or max(field.size) >= max(record.rf.size)):
            record.rf = field

    handles = []
    failure: tuple[str, str, Exception] | None = None
    try:
        for module in names:
            handles.append(module.register_forward_pre_hook(pre_hook))
            if isinstance(module, _PER_POSITION_MODULES):
                handles.append(module.register_forward_pre_hook(carry_hook))
            handles.append(module.register_forward_hook(post_hook))
        x = torch.empty(batch_size, *size, device="meta", dtype=dtype)
        setattr(x, _RF_ATTR, (rfm.input_field(len(size) - 1), True))
        with torch.no_grad(), tracer:
            model(x)
    except EmptyOutputError as exc:
        failure = (exc.layer, str(exc), exc)
    except (RuntimeError, ValueError, IndexError) as exc:
        failure = (tracer.stack[-1].name if tracer.stack else "", str(exc).split("\n")[0], exc)
    finally:
        for h in handles:
            h.remove()
    if failure is not None:
        _raise_too_small(model, name, size, batch_size, dtype, *failure)
    return _build_report(model, name, size, batch_size, dtype, training, names, order, tracer)


def _first_failing_layer(model: nn.Module, size: tuple[int, ...], batch_size: int,
                         dtype: torch.dtype) -> tuple[str, str] | None:
    """(layer, reason) of the innermost module that fails or empties its output at ``size``; None if none."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def pre(module: nn.Module, inputs: Any) -> None:
        stack.append(names[module])

    def post(module: nn.Module, inputs: Any, output: Any) -> None:
        outs = _tensors(output)
        if outs and all(t.numel() == 0 for t in outs) and any(t.numel() for t in _tensors(inputs)):
            raise EmptyOutputError(stack[-1], f"output {list(outs[0].shape)}")
        stack.pop()

    handles = [h for m in names for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    try:
        with torch.no_grad():
            model(torch.empty(batch_size, *size, device="meta", dtype=dtype))
    except Exception as exc:  # noqa: BLE001 - any failure names the layer it happened in
        return (stack[-1] if stack else ""), str(exc).split("\n")[0]
    finally:
        for h in handles:
            h.remove()
    return None


def _raise_too_small(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
                     layer: str, reason: str, exc: Exception) -> None:
    """Turn a failure into an input-too-small error with the smallest valid size, or re-raise it."""
    smallest = smallest_input(model, size, batch_size, dtype) if not _runs(model, size, batch_size, dtype) \
        else None
    spatial = "x".join(map(str, size[1:]))
    declared = getattr(model, "min_input_size", None)
    if not layer and isinstance(declared, tuple):
        # the model refused the size up front (cnnlab's Network); on this private copy, lift its check (and the
        # train-mode one of its aux heads) to find the first layer that would really produce an empty output
        declared_aux = getattr(model, "aux_min_input_size", None)
        model.min_input_size = (1,) * len(declared)
        if declared_aux is not None:
            model.aux_min_input_size = (1,) * len(declared_aux)
        try:
            found = _first_failing_layer(model, size, batch_size, dtype)
        finally:
            model.min_input_size = declared
            if declared_aux is not None:
                model.aux_min_input_size = declared_aux
        if found is None:
            raise ValueError(reason) from exc  # only the declared minimum is violated: the model's own message
        layer, reason = found
    if smallest is not None and smallest > min(size[1:]):
        if layer:
            where = f": layer {layer!r} ({type(model.get_submodule(layer)).__name__}) would produce an empty output"
        else:
            where = ""
        raise ValueError(f"input {spatial} is too small for {name}{where} ({reason}); the smallest valid size "
                         f"is {smallest}x{smallest} (found by search, {'train' if model.training else 'eval'} "
                         f"mode)") from exc
    raise ValueError(f"{name} failed on a {spatial} input in {('layer ' + repr(layer)) if layer else 'the model'}: "
                     f"{reason}") from exc


def _build_report(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
                  training: bool, names: dict[nn.Module, str], order: list[_Record], tracer: _Tracer) -> CostReport:
    # parameters per module (recursive), bottom-up over the pre-order walk; shared tensors counted once
    own: dict[str, list[int]] = {}
    seen_params: set[int] = set()
    total = trainable = param_bytes = 0
    for module, qual in names.items():
        counts = own[qual] = [0, 0]
        for p in module._parameters.values():
            if p is None:
                continue
            n = p.numel()
            counts[0] += n
            counts[1] += n if p.requires_grad else 0
            if id(p) not in seen_params:
                seen_params.add(id(p))
                total += n
                trainable += n if p.requires_grad else 0
                param_bytes += n * p.element_size()
    for qual in reversed(list(own)):
        if qual:
            parent = own[qual.rpartition(".")[0]]
            parent[0] += own[qual][0]
            parent[1] += own[qual][1]
    seen = {r.name for r in order}
    rows = []
    for r in order + [_Record(n, m) for m, n in names.items() if n not in seen]:
        qual = r.name
        rows.append(LayerCost(
            name=qual, type=type(r.module).__name__, depth=0 if qual == "" else qual.count(".") + 1,
            calls=r.calls, input_shape=r.input_shape, output_shape=r.output_shape,
            params=own[qual][0], trainable_params=own[qual][1], macs=r.macs,
            other_ops_by_kind={k: v for k, v in r.other.items() if v}, activation_bytes=r.out_bytes, rf=r.rf,
            is_leaf=not r.module._modules, self_macs=r.self_macs, self_other_ops=r.self_other,
            geometry=r.geometry, unknown_ops=r.unknown))
    return CostReport(
        model=name, input_size=size, batch_size=batch_size, dtype=str(dtype).replace("torch.", ""),
        training=training, layers=rows, params=total, trainable_params=trainable, macs=tracer.total_macs,
        other_ops_by_kind={k: v for k, v in tracer.total_other.items() if v},
        activation_bytes=tracer.alloc_bytes, param_bytes=param_bytes, unknown_ops=list(tracer.unknown.values()))
