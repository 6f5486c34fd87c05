"""Receptive field arithmetic: size, jump and start per spatial dimension, through any graph of aten ops.

Every tensor derived from the network input carries a ``ReceptiveField`` with three numbers per spatial
dimension (height, width for images), measured in input pixels:

- ``size``: how many input pixels one output unit sees (unclipped by the image border, as in the
  google-research/receptive_field tables);
- ``jump``: the distance in input pixels between two adjacent output units (the product of the strides);
- ``start``: the input coordinate of the centre of the first output unit's field (pixel ``i`` has its
  centre at coordinate ``i``; negative values mean the field hangs over the padding).

A window op (convolution, pooling) with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d`` maps
``size += (k - 1) * d * jump``, ``start += ((k - 1) * d / 2 - p) * jump``, ``jump *= s``. Branches meet in
``cat`` or an elementwise op (a residual add): the result is the union of the fields (for fields with
the same centre, the largest). An op that mixes every position (global pooling, flattening before a
fully connected layer) widens the field to the whole feature map. Batch norm is treated as the
per-position affine map it is at inference; in training its batch statistics mix every position.

``FieldTracker`` follows the fields through one traced forward pass: it keeps a ``TensorField`` per
tensor derived from the input (in a side table: the tensors themselves are never written to), and moves
it through each aten op according to the op's kind in ``cnnlab.analysis.ops``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.meta import tensors
from cnnlab.analysis.ops import arg, window_of

Number = float


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a tensor's units: ``size``, ``jump`` and ``start`` per spatial dimension."""

    size: tuple[Number, ...]
    jump: tuple[Number, ...]
    start: tuple[Number, ...]

    def to_dict(self) -> dict[str, list[Number]]:
        """JSON-ready ``{"size": [h, w], "jump": [h, w], "start": [h, w]}`` (integral values as ints)."""
        return {key: [_num(v) for v in getattr(self, key)] for key in ("size", "jump", "start")}


def _num(value: Number) -> Number:
    rounded = round(value, 6)
    return int(rounded) if float(rounded).is_integer() else rounded


def input_field(spatial_dims: int) -> ReceptiveField:
    """The field of the network input itself: each unit sees one pixel."""
    ones = (1,) * spatial_dims
    return ReceptiveField(ones, ones, (0,) * spatial_dims)


def union(fields: Sequence[ReceptiveField]) -> ReceptiveField:
    """The field of an op that combines tensors position by position (add, cat, multiply)."""
    if len(fields) == 1:
        return fields[0]
    size, jump, start = [], [], []
    for dim in range(len(fields[0].size)):
        lo = min(f.start[dim] - (f.size[dim] - 1) / 2 for f in fields)
        hi = max(f.start[dim] + (f.size[dim] - 1) / 2 for f in fields)
        size.append(hi - lo + 1)
        start.append((lo + hi) / 2)
        # branches that meet have the same jump in a well-formed network; keep the coarsest otherwise
        jump.append(max(f.jump[dim] for f in fields))
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def window(field: ReceptiveField, kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int],
           dilation: Sequence[int]) -> ReceptiveField:
    """The field after a convolution or pooling window (one value per spatial dimension each)."""
    size, jump, start = [], [], []
    for dim, (k, s, p, d) in enumerate(zip(kernel, stride, padding, dilation)):
        j = field.jump[dim]
        size.append(field.size[dim] + (k - 1) * d * j)
        start.append(field.start[dim] + ((k - 1) * d / 2 - p) * j)
        jump.append(j * s)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def transposed_window(field: ReceptiveField, kernel: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int]) -> ReceptiveField:
    """The field after a transposed convolution: output unit ``o`` reads inputs ``(o + p - i*d) / s``."""
    size, jump, start = [], [], []
    for dim, (k, s, p, d) in enumerate(zip(kernel, stride, padding, dilation)):
        j = field.jump[dim] / s
        # the kernel taps of one output unit span (k - 1) * d output steps, i.e. that many / s input steps
        size.append(field.size[dim] + math.ceil((k - 1) * d / s) * field.jump[dim])
        start.append(field.start[dim] + (p - (k - 1) * d / 2) * j)
        jump.append(j)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def global_field(field: ReceptiveField, extent: Sequence[int]) -> ReceptiveField:
    """The field of a unit that mixes every position of a feature map of spatial ``extent``."""
    size = tuple(field.size[d] + (n - 1) * field.jump[d] for d, n in enumerate(extent))
    start = tuple(field.start[d] + (n - 1) / 2 * field.jump[d] for d, n in enumerate(extent))
    jump = tuple(field.jump[d] * n for d, n in enumerate(extent))
    return ReceptiveField(size, jump, start)


def adaptive_window(field: ReceptiveField, in_extent: Sequence[int],
                    out_extent: Sequence[int]) -> ReceptiveField:
    """The field after adaptive pooling: the widest of its (possibly uneven) windows, mean stride."""
    size, jump, start = [], [], []
    for dim, (n_in, n_out) in enumerate(zip(in_extent, out_extent)):
        # window i covers [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out)): the same rule as PyTorch's kernels
        k = max(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) for i in range(n_out))
        j = field.jump[dim]
        size.append(field.size[dim] + (k - 1) * j)
        first_k = -(-n_in // n_out)
        start.append(field.start[dim] + (first_k - 1) / 2 * j)
        jump.append(j * n_in / n_out)
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))


def shifted(field: ReceptiveField, dim: int, offset: Number, step: Number = 1) -> ReceptiveField:
    """The field after slicing (``offset`` units dropped, every ``step``-th kept) or padding (negative offset)."""
    start = list(field.start)
    jump = list(field.jump)
    start[dim] += offset * jump[dim]
    jump[dim] *= step
    return ReceptiveField(field.size, tuple(jump), tuple(start))


def resized(field: ReceptiveField, scales: Sequence[float], bilinear: bool) -> ReceptiveField:
    """The field after upsampling by ``scales``: nearest reads one input unit, (bi)linear two."""
    size = tuple(s + (j if bilinear else 0) for s, j in zip(field.size, field.jump))
    jump = tuple(j / sc for j, sc in zip(field.jump, scales))
    return ReceptiveField(size, jump, field.start)


@dataclass(frozen=True)
class TensorField:
    """The field a traced tensor carries: ``field`` is None where it could not be followed (a permute to
    channels-last, a resampling without a rule); ``on_grid``: the tensor's last dims are still the image grid
    (N, C, H, W). A tensor that lost the grid (flattened, pooled away) carries the field of a unit that sees the
    whole map and never widens again."""

    field: ReceptiveField | None
    on_grid: bool = True


UNKNOWN = TensorField(None, False)
# modules that normalise across channels only, implemented with views that hide the grid from the op rules
_PER_POSITION_MODULES = (nn.LocalResponseNorm, nn.CrossMapLRN2d)
_SAME_GRID_KINDS = {"activation", "elementwise", "norm"}
_WINDOW_KINDS = {"conv", "max_pool", "avg_pool", "adaptive", "upsample", "upsample_linear"}
# ops that may drop the grid (flatten, a global reduction): what follows sees every position
_FLATTENING_KINDS = {"free", "reduction", "pad", "slice", "pixel_shuffle", "pixel_unshuffle"}


class FieldTracker:
    """The ``TensorField`` of every tensor of one forward pass, propagated op by op (see the module docstring)."""

    def __init__(self, x: torch.Tensor, spatial_dims: int) -> None:
        self.spatial_dims = spatial_dims
        self.tensor_dims = spatial_dims + 2
        # id -> (tensor, field): holding the tensor keeps its id from being reused while the pass runs
        self._fields: dict[int, tuple[torch.Tensor, TensorField]] = {}
        self._carried: dict[int, TensorField | None] = {}
        if spatial_dims:  # a vector of features has no grid, hence no receptive field (None)
            self.set(x, TensorField(input_field(spatial_dims)))

    def get(self, t: Any) -> TensorField | None:
        entry = self._fields.get(id(t))
        return entry[1] if entry is not None else None

    def set(self, out: Any, value: TensorField) -> None:
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor) and not isinstance(t, nn.Parameter):
                self._fields[id(t)] = (t, value)

    def enter(self, module: nn.Module, inputs: Any) -> None:
        """Before a module runs: remember the field of a per-position module's input."""
        if isinstance(module, _PER_POSITION_MODULES):
            first = tensors(inputs)
            self._carried[id(module)] = self.get(first[0]) if first else None

    def leave(self, module: nn.Module, first_output: Any) -> ReceptiveField | None:
        """After a module ran: the field of its output (a per-position module passes its input's through)."""
        if id(module) in self._carried and first_output is not None:
            # the op-level route through a 5-D view would lose the grid; the module maps position to position
            carried = self._carried.pop(id(module))
            if carried is None:
                self._fields.pop(id(first_output), None)
            else:
                self.set(first_output, carried)
        entry = self.get(first_output)
        return entry.field if entry is not None else None

    def propagate(self, kind: str, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        """Give ``out`` the field that an op of ``kind`` (``cnnlab.analysis.ops``) makes of its inputs' fields."""
        fields = []
        for a in (*args, *kwargs.values()):
            for t in (a if isinstance(a, (list, tuple)) else (a,)):
                entry = self._fields.get(id(t)) if isinstance(t, torch.Tensor) else None
                if entry is not None:
                    if entry[1].field is None:
                        self.set(out, UNKNOWN)
                        return
                    fields.append((entry[1], t))
        if not fields:
            return
        if len(fields) == 1 and kind in _SAME_GRID_KINDS:
            first = out[0] if isinstance(out, (tuple, list)) else out
            source = fields[0][1]
            if isinstance(first, torch.Tensor) and first.shape[2:] == source.shape[2:] and first.dim() == source.dim():
                if first is not source:  # an in-place op returns its input, which already has it
                    self.set(first, fields[0][0])
                return  # per-position ops (activation, norm, bias-free elementwise): the field is unchanged
        outs = [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
        if outs:
            self.set(out, self._moved(kind, args, kwargs, fields, outs[0]))

    def _moved(self, kind: str, args: Sequence[Any], kwargs: dict[str, Any], fields: list,
               y: torch.Tensor) -> TensorField:
        x = args[0] if args and isinstance(args[0], torch.Tensor) else fields[0][1]
        entry = self.get(x) or TensorField(fields[0][0].field, False)
        f, x_grid = entry.field, entry.on_grid and x.dim() == self.tensor_dims
        nd = self.spatial_dims
        if kind in _WINDOW_KINDS and not x_grid:
            return UNKNOWN  # a window op on a tensor whose grid was not followed
        if kind in ("conv", "max_pool", "avg_pool"):
            win = window_of(kind, args, kwargs)
            return TensorField((transposed_window if win.transposed else window)(f, *win[:4]))
        if kind == "adaptive":
            return TensorField(adaptive_window(f, tuple(x.shape[2:]), tuple(y.shape[2:])))
        if kind in ("upsample", "upsample_linear") or (kind == "pixel_shuffle" and x_grid):
            scales = [o / i for o, i in zip(y.shape[2:], x.shape[2:])]  # pixel shuffle: nearest upsampling
            return TensorField(resized(f, scales, bilinear=kind == "upsample_linear"))
        if kind == "pixel_unshuffle" and x_grid:
            r = int(arg(args, kwargs, 1, "downscale_factor"))
            return TensorField(window(f, (r,) * nd, (r,) * nd, (0,) * nd, (1,) * nd))
        if kind == "slice" and x_grid and int(arg(args, kwargs, 1, "dim", 0)) % x.dim() >= 2:
            dim = int(arg(args, kwargs, 1, "dim", 0)) % x.dim()
            begin, size = arg(args, kwargs, 2, "start") or 0, x.shape[dim]
            begin = max(begin + size, 0) if begin < 0 else min(begin, size)
            return TensorField(shifted(f, dim - 2, begin, int(arg(args, kwargs, 4, "step", 1))))
        if kind == "pad" and x_grid:
            pads = list(arg(args, kwargs, 1, "pad"))
            for i in range(0, len(pads), 2):
                dim = x.dim() - 1 - i // 2
                if dim >= 2 and pads[i]:
                    f = shifted(f, dim - 2, -pads[i])
            return TensorField(f)
        if kind == "reduction" and x_grid:
            dims = arg(args, kwargs, 1, "dim")
            dims = range(x.dim()) if dims is None or (isinstance(dims, (list, tuple)) and not dims) else (
                [dims] if isinstance(dims, int) else dims)
            spatial = sorted({d % x.dim() - 2 for d in dims if d % x.dim() >= 2})
            if not spatial:
                return TensorField(f, y.dim() == x.dim())
            extent = [x.shape[2 + d] if d in spatial else 1 for d in range(nd)]
            return TensorField(global_field(f, extent), y.dim() == x.dim())
        return self._combined(kind, fields, y)

    def _combined(self, kind: str, fields: list, y: torch.Tensor) -> TensorField:
        """Ops that move no window: the union of the inputs' fields; losing the grid mixes every position."""
        y_grid = tuple(y.shape[2:]) if y.dim() == self.tensor_dims else None
        parts, grid_jump, on_grid = [], None, False
        for entry, t in fields:
            f = entry.field
            grid = tuple(t.shape[2:]) if entry.on_grid and t.dim() == self.tensor_dims else None
            if grid is None:
                parts.append(f)
            elif grid == y_grid or (math.prod(grid) == 1 and y_grid is not None):
                parts.append(f)
                if grid == y_grid:
                    on_grid = True
                    grid_jump = f.jump if grid_jump is None else grid_jump
            elif kind in _FLATTENING_KINDS:
                parts.append(global_field(f, grid))  # flattening: what follows sees every position
            else:
                return UNKNOWN  # the grid is resampled or moved by an op without a rule here
        merged = union(parts)
        if grid_jump is not None and len(parts) > 1:
            merged = ReceptiveField(merged.size, grid_jump, merged.start)
        return TensorField(merged, on_grid)


def empirical_receptive_field(model: nn.Module, input_size: Sequence[int], output: str | None = None,
                              linearize: bool = True, seed: int = 0) -> tuple[int, ...]:
    """Measured field of the centre unit: the extent of the non-zero input gradient (for tests and checks).

    Runs ``model`` (a copy, in eval mode, on CPU, real weights drawn with ``seed``) on one input of
    ``input_size`` (C, H, W). ``output`` names a submodule whose output is used (default: the model's).
    ``linearize`` replaces ReLU-like activations by identity and max pooling by average pooling of the
    same geometry, so that dead units and argmax routing cannot hide part of the field. The measured
    extent is clipped by the image border: use an input larger than the field.
    """
    import copy

    net = copy.deepcopy(model).to("cpu").float().eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5 + 0.1)
    if linearize:
        _linearize(net)
    captured: list[torch.Tensor] = []
    handle = None
    if output is not None:
        handle = net.get_submodule(output).register_forward_hook(lambda _m, _i, out: captured.append(out))
    x = torch.randn(1, *input_size, generator=gen, requires_grad=True)
    try:
        result = net(x)
    finally:
        if handle is not None:
            handle.remove()
    y = captured[0] if captured else result
    if not isinstance(y, torch.Tensor):
        y = y[0]
    if y.dim() > 2:
        centre = tuple(n // 2 for n in y.shape[2:])
        unit = y[(0, slice(None), *centre)].sum()
    else:
        unit = y[0].sum()
    (grad,) = torch.autograd.grad(unit, x)
    nonzero = grad[0].abs().sum(0) > 0
    extents = []
    for dim in range(nonzero.dim()):
        other = tuple(d for d in range(nonzero.dim()) if d != dim)
        idx = torch.nonzero(nonzero.any(dim=other) if other else nonzero).flatten()
        extents.append(int(idx.max() - idx.min() + 1) if idx.numel() else 0)
    return tuple(extents)


def _linearize(net: nn.Module) -> None:
    pools = {nn.MaxPool1d: nn.AvgPool1d, nn.MaxPool2d: nn.AvgPool2d, nn.MaxPool3d: nn.AvgPool3d}
    for name, child in list(net.named_children()):
        if isinstance(child, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardtanh)):
            setattr(net, name, nn.Identity())
        elif type(child) in pools and child.dilation in (1, (1, 1), (1, 1, 1)):
            setattr(net, name, pools[type(child)](child.kernel_size, child.stride, child.padding,
                                                  ceil_mode=child.ceil_mode))
        else:
            _linearize(child)
