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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

Number = float


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of a tensor's units: ``size``, ``jump`` and ``start`` per spatial dimension."""

    size: tuple[Number, ...]
    jump: tuple[Number, ...]
    start: tuple[Number, ...]

    def to_dict(self) -> dict[str, list[Number]]:
        """JSON-ready ``{"size": [h, w], "jump": [h, w], "start": [h, w]}`` (integral values as ints)."""
        return {"size": [_num(v) for v in self.size], "jump": [_num(v) for v in self.jump],
                "start": [_num(v) for v in self.start]}


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
    kernel, stride = [], []
    size, jump, start = [], [], []
    for dim, (n_in, n_out) in enumerate(zip(in_extent, out_extent)):
        # window i covers [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out)): the same rule as PyTorch's kernels
        k = max(-(-(i + 1) * n_in // n_out) - (i * n_in // n_out) for i in range(n_out))
        kernel.append(k)
        stride.append(n_in / n_out)
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
