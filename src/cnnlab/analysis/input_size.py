"""Input sizes: what a user typed turned into (C, H, W) and a batch, and the smallest size a network accepts.

``smallest_input`` finds the smallest square input by search (doubling, then bisection), so that an
input that is too small is refused with the first layer whose output would be empty and the size that
works, whatever the network declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from cnnlab.analysis.meta import meta_copy, tensors


class EmptyOutputError(ValueError):
    """A layer would produce an empty output: the input is too small for the network."""

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(message)
        self.layer = layer


def _runs(model: nn.Module, size: tuple[int, ...], batch_size: int, dtype: torch.dtype) -> bool:
    try:
        with torch.no_grad():
            out = model(torch.empty(batch_size, *size, device="meta", dtype=dtype))
        return all(t.numel() > 0 for t in tensors(out))
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


def _input_layer(model: nn.Module) -> tuple[int, int] | None:
    """(spatial dims, input channels) of the first convolution or linear layer (0 dims for a linear), or None."""
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return len(m.kernel_size), m.in_channels
        if isinstance(m, nn.Linear):
            return 0, m.in_features
    return None


def resolve_sizes(model: nn.Module, input_size: Sequence[int] | int | None,
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


def _first_failing_layer(model: nn.Module, size: tuple[int, ...], batch_size: int,
                         dtype: torch.dtype) -> tuple[str, str] | None:
    """(layer, reason) of the innermost module that fails or empties its output at ``size``; None if none."""
    names = {m: n for n, m in model.named_modules()}
    stack: list[str] = []

    def pre(module: nn.Module, inputs: Any) -> None:
        stack.append(names[module])

    def post(module: nn.Module, inputs: Any, output: Any) -> None:
        outs = tensors(output)
        if outs and all(t.numel() == 0 for t in outs) and any(t.numel() for t in tensors(inputs)):
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


def raise_too_small(model: nn.Module, name: str, size: tuple[int, ...], batch_size: int, dtype: torch.dtype,
                    layer: str, reason: str, exc: Exception) -> None:
    """Turn a failure into an input-too-small error with the smallest valid size, or re-raise it."""
    smallest = smallest_input(model, size, batch_size, dtype) if not _runs(model, size, batch_size, dtype) \
        else None
    spatial = "x".join(map(str, size[1:]))
    declared = getattr(model, "min_input_size", None)
    if not layer and isinstance(declared, tuple):
        # the model refused the size up front (cnnlab's Network); a second copy without its check (and the
        # train-mode one of its aux heads) finds the first layer that would really produce an empty output
        lifted = {"min_input_size": (1,) * len(declared)}
        declared_aux = getattr(model, "aux_min_input_size", None)
        if declared_aux is not None:
            lifted["aux_min_input_size"] = (1,) * len(declared_aux)
        found = _first_failing_layer(meta_copy(model, overrides=lifted), size, batch_size, dtype)
        if found is None:
            raise ValueError(reason) from exc  # only the declared minimum is violated: the model's own message
        layer, reason = found
    if batch_size == 1 and model.training and "more than 1 value per channel" in reason:
        # batch norm in train mode cannot normalise one value per channel: a larger input is one way out of it
        larger = f", or at {smallest}x{smallest} or larger" if smallest is not None else ""
        raise ValueError(f"{name} in train mode: layer {layer!r} (batch norm) sees one value per channel at batch "
                         f"size 1 ({reason}); analyse with batch_size=2 (--batch 2), in eval mode{larger}") from exc
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
