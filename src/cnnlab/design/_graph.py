"""Module-tree surgery shared by the transforms: find conv units, match names, swap modules in place.

Transforms work on a deep copy of the user's model and replace submodules by assignment on their parent,
which keeps the parent's child order and the names of everything that is not replaced.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.blocks import ConvNormAct

Where = str | re.Pattern | Callable[[str], bool] | None

_GLOB_CHARS = set("*?[")


def compile_where(where: Where) -> Callable[[str], bool]:
    """Turn a ``where`` argument into a predicate on qualified module names.

    ``None`` matches everything; a string is a shell glob (``"layer1.*"``, ``"*conv2*"``) matched against
    the whole name, or a regular expression when prefixed with ``"re:"`` (``"re:layer[12]\\..*"``, also
    matched against the whole name); a compiled ``re.Pattern`` or a callable is used as is.
    """
    if where is None:
        return lambda name: True
    if isinstance(where, re.Pattern):
        return lambda name: where.fullmatch(name) is not None
    if callable(where):
        return where
    if not isinstance(where, str):
        raise TypeError(f"where must be a glob string, 're:<regex>', a re.Pattern or a callable, got {where!r}")
    if where.startswith("re:"):
        try:
            regex = re.compile(where[3:])
        except re.error as exc:
            raise ValueError(f"malformed where pattern {where!r}: {exc}; write a valid regular expression "
                             f"after 're:' or use a shell glob such as 'layer1.*'") from None
        return lambda name: regex.fullmatch(name) is not None
    _check_glob(where)
    return lambda name: fnmatch.fnmatchcase(name, where)


def _check_glob(pattern: str) -> None:
    # fnmatch silently treats an unclosed '[' as a literal; a user who wrote one almost surely made a typo
    if not pattern.strip():
        raise ValueError(f"malformed where pattern {pattern!r}: it is empty; give a glob such as 'layer1.*'")
    depth = 0
    for char in pattern:
        if char == "[":
            if depth:
                raise ValueError(f"malformed where pattern {pattern!r}: nested '[' in a character class")
            depth = 1
        elif char == "]" and depth:
            depth = 0
    if depth:
        raise ValueError(f"malformed where pattern {pattern!r}: '[' is never closed by ']'; "
                         f"close the character class or use 're:<regex>'")
    if not _GLOB_CHARS & set(pattern) and any(c in pattern for c in "()|+^$\\"):
        raise ValueError(f"malformed where pattern {pattern!r}: it looks like a regular expression; "
                         f"prefix it with 're:' (e.g. 're:{pattern}') or write a shell glob")


@dataclass
class ConvUnit:
    """A convolution and the module that carries it: a ConvNormAct (conv + its norm/act) or the bare conv."""

    name: str
    module: nn.Module
    conv: nn.Conv2d

    @property
    def is_block(self) -> bool:
        """True when the convolution sits in a ConvNormAct (the whole unit is replaced)."""
        return isinstance(self.module, ConvNormAct)


def conv_units(model: nn.Module) -> Iterator[ConvUnit]:
    """Every ``nn.Conv2d`` of ``model`` in registration order, grouped with its ConvNormAct when it has one."""
    for name, module in model.named_modules():
        if isinstance(module, ConvNormAct) and isinstance(getattr(module, "conv", None), nn.Conv2d):
            yield ConvUnit(name, module, module.conv)
        elif isinstance(module, nn.Conv2d) and type(module) is nn.Conv2d:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else None
            if isinstance(parent, ConvNormAct) and attr == "conv":
                continue  # reported with its ConvNormAct above
            yield ConvUnit(name, module, module)


def unit_matches(unit: ConvUnit, match: Callable[[str], bool]) -> bool:
    """``where`` may name the unit (``layer1.0.conv1``) or its convolution (``layer1.0.conv1.conv``)."""
    names = [unit.name] if not unit.is_block else [unit.name, f"{unit.name}.conv"]
    return any(match(n) for n in names)


def set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule at qualified ``name``; its position among its siblings is kept."""
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    if attr not in parent._modules:
        raise KeyError(f"{name!r} is not a submodule of {type(root).__name__}")
    setattr(parent, attr, new)


def param_count(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


def like(new: nn.Module, reference: torch.Tensor) -> nn.Module:
    """Move a freshly built module to the device and floating dtype of ``reference`` (a weight it replaces)."""
    return new.to(device=reference.device, dtype=reference.dtype)


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy: the transforms never touch the user's model."""
    return copy.deepcopy(model)


def activation_of(unit: nn.Module) -> nn.Module | None:
    """The activation module of a ConvNormAct (``None`` when it has none)."""
    return unit._modules.get("act")


def norm_of(unit: nn.Module) -> nn.Module | None:
    """The norm module of a ConvNormAct (``None`` when it has none)."""
    return unit._modules.get("bn")


def explicit_padding(conv: nn.Conv2d) -> tuple[int, int]:
    """The (height, width) zero padding of ``conv``, with ``"same"`` / ``"valid"`` resolved (odd kernels)."""
    if conv.padding == "valid":
        return (0, 0)
    if conv.padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))  # type: ignore[return-value]
    return tuple(conv.padding)  # type: ignore[return-value]


def conv_spec(conv: nn.Conv2d) -> str:
    """``64->64 5x5 /2 g4`` style summary of a convolution (stride, dilation, groups only when not 1)."""
    kh, kw = conv.kernel_size
    text = f"{conv.in_channels}->{conv.out_channels} {kh}x{kw}"
    if conv.stride != (1, 1):
        text += f" /{conv.stride[0]}" if conv.stride[0] == conv.stride[1] else f" /{conv.stride}"
    if conv.dilation != (1, 1):
        text += f" d{conv.dilation[0]}" if conv.dilation[0] == conv.dilation[1] else f" d{conv.dilation}"
    if conv.groups != 1:
        text += f" g{conv.groups}"
    return text


def describe(module: nn.Module) -> str:
    """A one-line description of a (replaced) module: its convolutions and linear layers in order."""
    if isinstance(module, nn.Linear):
        return f"Linear {module.in_features}->{module.out_features}"
    if isinstance(module, nn.Conv2d):
        return f"Conv2d {conv_spec(module)}"
    if isinstance(module, ConvNormAct):
        parts = "-".join(type(m).__name__ if k == "act" else k for k, m in module.named_children())
        return f"ConvNormAct {conv_spec(module.conv)} ({parts})"
    parts: list[str] = []
    for child in module.modules():
        if isinstance(child, nn.Conv2d):
            parts.append(conv_spec(child))
        elif isinstance(child, nn.Linear):
            parts.append(f"fc {child.in_features}->{child.out_features}")
    inner = " + ".join(parts) if parts else "no conv/linear"
    return f"{type(module).__name__}[{inner}]"
