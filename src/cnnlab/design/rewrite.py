"""The one driver every transform runs on: ``rewrite(model, select, replace)``, for zoo and outside networks alike.

``select`` says which modules to replace, ``replace`` builds each new module (from ``cnnlab.blocks``); the driver
works on a deep copy, swaps modules in place on their parent (names and child order of everything else are kept)
and returns the new model with a ``RewriteRecord`` of what it replaced. It measures nothing: ``compare`` does.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.blocks import ConvNormAct

Where = str | re.Pattern | Callable[[str], bool] | None
Select = str | re.Pattern | type | tuple[type, ...] | Callable[[str, nn.Module], bool]


class Skip(Exception):
    """Raised by a ``replace`` function to leave a selected module as it is; the message becomes a note."""


@dataclass(frozen=True)
class Replacement:
    """One replaced module: its qualified name, old and new description, and their parameter counts."""

    name: str
    old: str
    new: str
    params_before: int
    params_after: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the same keys as the fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RewriteRecord:
    """What a transform replaced (no costs: ``compare(before, after, record)`` measures them)."""

    transform: str
    options: dict[str, Any] = field(default_factory=dict)
    replaced: tuple[Replacement, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """True when at least one module was replaced."""
        return bool(self.replaced)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: transform, options, changed, replaced, notes."""
        return {"transform": self.transform, "options": dict(self.options), "changed": self.changed,
                "replaced": [r.to_dict() for r in self.replaced], "notes": list(self.notes)}


def rewrite(model: nn.Module, select: Select, replace: Callable[[nn.Module], nn.Module], *,
            transform: str = "rewrite", options: dict[str, Any] | None = None) -> tuple[nn.Module, RewriteRecord]:
    """Replace every module of a copy of ``model`` that ``select`` picks by ``replace(module)``.

    ``select`` is a module class (or tuple of classes), a name pattern as ``where`` takes it (glob or
    ``"re:<regex>"``), or a callable ``(qualified name, module) -> bool``. Modules are visited in registration
    order and a selected module is replaced whole (its children are not visited). ``replace`` returns the new
    module, or raises ``Skip(reason)`` to keep the old one with a note. The input model is never modified.
    Example: ``rewrite(net, lambda n, m: isinstance(m, nn.Conv2d) and m.kernel_size == (5, 5),
    lambda m: StackedConv(m.in_channels, m.out_channels, 5))``.
    """
    new_model = copy.deepcopy(model)
    new_model, replaced, notes = rewrite_in_place(new_model, select, replace)
    return new_model, RewriteRecord(transform, dict(options or {}), tuple(replaced), tuple(notes))


def rewrite_in_place(root: nn.Module, select: Select, replace: Callable[[nn.Module], nn.Module],
          ) -> tuple[nn.Module, list[Replacement], list[str]]:
    """``rewrite`` on ``root`` itself (no copy): returns the (possibly new) root, the rows and the notes."""
    match = _selector(select)
    replaced: list[Replacement] = []
    notes: list[str] = []
    done: list[str] = []
    for name, module in list(root.named_modules()):
        if any(name == d or name.startswith(f"{d}.") or d == "" for d in done) or not match(name, module):
            continue
        done.append(name)
        # read before replace, which may edit the module in place (a head rebuilt on the copy)
        old, params, reference = describe(module), param_count(module), next(iter(module.parameters()), None)
        try:
            new = replace(module)
        except Skip as why:
            notes.append(f"{name or 'model'}: skipped, {why}")
            continue
        if reference is not None:  # a fresh module goes where the old weights were (device, floating dtype)
            new = new.to(device=reference.device, dtype=reference.dtype)
        if name:
            parent_name, _, attr = name.rpartition(".")
            setattr(root.get_submodule(parent_name), attr, new)  # same key: the child order is kept
        else:
            root = new
        replaced.append(Replacement(name, old, describe(new), params, param_count(new)))
    return root, replaced, notes


def _selector(select: Select) -> Callable[[str, nn.Module], bool]:
    if isinstance(select, type) or (isinstance(select, tuple) and all(isinstance(t, type) for t in select)):
        return lambda name, module: isinstance(module, select)
    if isinstance(select, (str, re.Pattern)):
        by_name = compile_where(select)
        return lambda name, module: by_name(name)
    if callable(select):
        return select
    raise TypeError(f"select must be a module class, a name pattern or a callable (name, module) -> bool, "
                    f"got {select!r}")


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


def where_text(where: Where) -> str | None:
    """How a ``where`` argument is shown in options and notes."""
    return where if where is None or isinstance(where, str) else getattr(where, "pattern", None) or repr(where)


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
    if not set("*?[") & set(pattern) and any(c in pattern for c in "()|+^$\\"):
        raise ValueError(f"malformed where pattern {pattern!r}: it looks like a regular expression; "
                         f"prefix it with 're:' (e.g. 're:{pattern}') or write a shell glob")


def conv_units(root: nn.Module, where: Where, min_kernel: int, square: bool = True,
               ) -> Callable[[str, nn.Module], bool]:
    """A ``select`` for convolution units: a ConvNormAct, or a bare ``nn.Conv2d`` outside one, whose kernel
    (square unless ``square=False``) has a side ``>= min_kernel`` and whose name (or its conv's,
    ``<unit>.conv``) matches ``where``."""
    match = compile_where(where)
    inside = {f"{name}.conv" for name, m in root.named_modules() if isinstance(m, ConvNormAct)}

    def select(name: str, module: nn.Module) -> bool:
        if isinstance(module, ConvNormAct):
            conv, names = module.conv, (name, f"{name}.conv")
        elif type(module) is nn.Conv2d and name not in inside:
            conv, names = module, (name,)
        else:
            return False
        kh, kw = conv.kernel_size
        return (kh == kw or not square) and max(kh, kw) >= min_kernel and any(match(n) for n in names)

    return select


def unit_parts(unit: nn.Module) -> tuple[nn.Conv2d, dict[str, Any], nn.Module | None]:
    """A conv unit's convolution, the ConvNormAct keywords that rebuild it (norm, order, bias, dilation, groups;
    not kernel, stride, padding) and its activation (``None`` when linear, as a bare convolution is)."""
    if isinstance(unit, ConvNormAct):
        if unit.pooling is not None:
            raise Skip("a conv-pool-norm-act unit: its pool cannot be split between the new layers")
        conv, norm, act = unit.conv, unit.normalization, unit.activation
        kwargs: dict[str, Any] = {"norm": norm is not None, "preact": unit.preact}
        if norm is not None:
            kwargs.update(norm_eps=norm.eps, norm_momentum=norm.momentum)
    else:
        conv, act, kwargs = unit, None, {"norm": False, "preact": False}
    if conv.padding_mode != "zeros":
        raise Skip(f"padding_mode={conv.padding_mode!r}: the blocks pad with zeros")
    if conv.stride[0] != conv.stride[1]:
        raise Skip(f"a non-square stride {conv.stride}")
    kwargs.update(bias=conv.bias is not None, dilation=conv.dilation, groups=conv.groups)
    return conv, kwargs, act


def inner_activation(act: nn.Module | None) -> Callable[[], nn.Module] | str:
    """What the layers a unit is split into put between them: a copy of its activation, or ReLU when it had
    none (Szegedy et al. 2016, Sec. 3.1: a nonlinearity between the factors beats a linear factorisation)."""
    return "relu" if act is None else lambda: copy.deepcopy(act)


def keep_activation(new: nn.Module, act: nn.Module | None, preact: bool) -> nn.Module:
    """Put a split unit's own activation back where it was: after its last layer (before its first when
    pre-activated). The layers were built with ``inner_activation``; only a linear unit needs a change."""
    layers = [m for m in new.children() if isinstance(m, ConvNormAct)]
    outer = layers[0] if preact else layers[-1]
    if act is None and outer.activation is not None:
        del outer.act
    return new


def padding_of(conv: nn.Conv2d) -> tuple[tuple[int, int], bool]:
    """The (height, width) zero padding of ``conv`` (``"same"`` / ``"valid"`` resolved) and whether it is the
    padding that keeps the size at stride 1 (what ConvNormAct's ``padding=None`` gives every layer)."""
    same = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    if conv.padding == "valid":
        pad = (0, 0)
    else:
        pad = same if conv.padding == "same" else tuple(conv.padding)
    return pad, pad == same and all(k % 2 for k in conv.kernel_size)  # type: ignore[return-value]


def param_count(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not)."""
    return sum(p.numel() for p in module.parameters())


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
