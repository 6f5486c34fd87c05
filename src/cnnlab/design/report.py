"""Measuring what a transform bought: ``compare(before, after, record)`` -> TransformReport (params, MACs, field).

Transforms only rewrite (``cnnlab.design.rewrite``); this module is the one that runs ``cnnlab.analysis``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.analysis import CostReport, LayerCost, analyze
from cnnlab.design.rewrite import Replacement, RewriteRecord, param_count


@dataclass(frozen=True)
class Cost:
    """Totals of one network: parameters, multiply-adds and receptive field of its last feature map.

    ``macs`` and ``receptive_field`` come from ``cnnlab.analysis.analyze`` at the report's input size; they
    are ``None`` when the network cannot be analysed at that size (the reason is in the report's notes).
    """

    params: int
    macs: int | None = None
    receptive_field: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"params", "macs", "receptive_field": [h, w] or None}``."""
        rf = list(self.receptive_field) if self.receptive_field is not None else None
        return {"params": self.params, "macs": self.macs, "receptive_field": rf}


@dataclass(frozen=True)
class TransformReport:
    """What one transform did: the layers it replaced and the network's cost before and after.

    An empty ``replaced`` means the transform did not apply; ``notes`` then say why and the model is unchanged.
    """

    transform: str
    options: dict[str, Any]
    input_size: tuple[int, int, int] | None
    before: Cost
    after: Cost
    replaced: tuple[Replacement, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        """True when at least one layer was replaced."""
        return bool(self.replaced)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stable keys: transform, options, input_size, before, after, replaced, notes)."""
        return {
            "transform": self.transform,
            "options": dict(self.options),
            "input_size": list(self.input_size) if self.input_size is not None else None,
            "changed": self.changed,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "replaced": [r.to_dict() for r in self.replaced],
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        size = "x".join(map(str, self.input_size)) if self.input_size else "unknown input"
        lines = [f"{self.transform}({options}) at {size}: "
                 + (f"{len(self.replaced)} layer(s) replaced" if self.replaced else "nothing replaced")]
        if self.replaced:
            names = [r.name or "(model)" for r in self.replaced]  # "" is the whole network, replaced
            name_w = max(len("layer"), *(len(n) for n in names))
            old_w = max(len("old"), *(len(r.old) for r in self.replaced))
            new_w = max(len("new"), *(len(r.new) for r in self.replaced))
            lines.append(f"  {'layer':<{name_w}}  {'old':<{old_w}}  {'new':<{new_w}}  {'params':>25}")
            for name, r in zip(names, self.replaced):
                params = f"{r.params_before:,} -> {r.params_after:,}"
                lines.append(f"  {name:<{name_w}}  {r.old:<{old_w}}  {r.new:<{new_w}}  {params:>25}")
        lines.append(_total_line("params", self.before.params, self.after.params))
        lines.append(_total_line("MACs", self.before.macs, self.after.macs))
        rf_before, rf_after = self.before.receptive_field, self.after.receptive_field
        if rf_before is not None or rf_after is not None:
            lines.append(f"  {'receptive field':<16}{_rf(rf_before):>16} -> {_rf(rf_after):<16}"
                         + ("  (unchanged)" if rf_before == rf_after else ""))
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


def _rf(rf: tuple[int, int] | None) -> str:
    return "n/a" if rf is None else f"{rf[0]}x{rf[1]}"


def _total_line(label: str, before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return f"  {label:<16}{_num(before):>16} -> {_num(after):<16}"
    ratio = f"x{after / before:.4f}" if before else ""
    delta = after - before
    return f"  {label:<16}{before:>16,} -> {after:<16,}  {ratio} ({delta:+,})"


def _num(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def measure(model: nn.Module, input_size: Sequence[int] | None) -> tuple[Cost, list[str]]:
    """Parameters always; MACs and receptive field via ``cnnlab.analysis.analyze`` when ``input_size`` is known.

    Returns the cost and notes explaining anything that could not be measured. Analysis runs on a meta copy,
    so measuring costs no memory and leaves ``model`` untouched.
    """
    params = param_count(model)
    if input_size is None:
        return Cost(params), ["no input size: MACs and receptive field not measured (pass input_size)"]
    try:
        # inference cost, as the zoo's cards and `cnnlab summary` count it: a model left in train mode would run
        # (and count) its auxiliary heads, and its receptive field would end at the first of them
        cost = analyze(model, input_size=tuple(input_size), training=False)
    except ValueError as exc:  # e.g. an input too small for the network
        return Cost(params), [f"analysis failed at {tuple(input_size)}: {exc}"]
    return Cost(params, int(cost.macs), feature_receptive_field(cost)), []


_ADAPTIVE = ("AdaptiveAvgPool2d", "AdaptiveMaxPool2d")
_POOL_TYPES = ("AvgPool2d", "MaxPool2d")


def feature_receptive_field(cost: CostReport) -> tuple[int, int] | None:
    """Receptive field (height, width) of the network's last feature map, before any global pooling/flatten.

    The maps end at the first leaf layer (in execution order) that leaves the 4-D feature maps (flatten,
    linear), at adaptive pooling (a head's resizing to a fixed grid) or at a pooling of a map larger than 1x1
    down to 1x1: past that point the field depends on the input size, not on the design. The field is that of
    the outermost module that finished before that layer (an Inception module: the union of its branches, not
    its last branch), or of the whole network when nothing ends the maps.
    """
    leaves = [r for r in cost.layers if r.is_leaf and r.output_shape is not None]
    end = next((i for i, r in enumerate(leaves) if _ends_the_maps(r)), len(leaves))
    if end == 0:
        return None
    last = leaves[end - 1].name
    stop = leaves[end].name if end < len(leaves) else None  # None: the maps run to the network's output
    outer = [r for r in cost.layers if _inside(last, r.name) and (stop is None or not _inside(stop, r.name))]
    rf = min(outer, key=lambda r: r.depth).rf  # a layer the analyser cannot follow: None, not a stale value
    return None if rf is None else (int(round(rf.size[0])), int(round(rf.size[1])))


def _ends_the_maps(layer: LayerCost) -> bool:
    out, inp = layer.output_shape, layer.input_shape
    # adaptive pooling resizes maps for the head (VGG's 7x7); global pooling mixes everything
    return len(out) != 4 or layer.type in _ADAPTIVE or (
        layer.type in _POOL_TYPES and out[-1] * out[-2] == 1 and inp is not None and len(inp) == 4
        and inp[-1] * inp[-2] > 1)


def _inside(name: str, outer: str) -> bool:
    return outer == "" or name == outer or name.startswith(f"{outer}.")


def resolve_input_size(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, int, int] | None:
    """``input_size`` checked as (C, H, W); without one, a zoo model's card gives its default input size."""
    if input_size is not None:
        size = tuple(input_size)
        if len(size) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
            raise ValueError(f"input_size must be three positive ints (C, H, W) such as (3, 32, 32), "
                             f"got {input_size!r}")
        return size  # type: ignore[return-value]
    name = getattr(model, "model_name", "")
    if name:
        from cnnlab.models import list_models, model_card

        if name in list_models():
            return tuple(model_card(name).input_size)  # type: ignore[return-value]
    return None


def compare(before: nn.Module, after: nn.Module, record: RewriteRecord | None = None, *,
            input_size: Sequence[int] | None = None) -> TransformReport:
    """Measure two networks (a model and its transformed copy) at ``input_size`` (default: ``before``'s zoo card).

    ``record`` (what a transform returned) supplies the report's name, options, rows and notes; when it says
    nothing was replaced, ``after`` is the same network and is not measured a second time.
    """
    measure_after = record is None or record.changed
    record = record if record is not None else RewriteRecord("compare")
    size = resolve_input_size(before, input_size)
    cost_before, notes_before = measure(before, size)
    cost_after, notes_after = measure(after, size) if measure_after else (cost_before, [])
    notes = list(record.notes) + [f"before: {n}" for n in notes_before] + [f"after: {n}" for n in notes_after]
    if size is None and notes_before:
        notes = list(record.notes) + notes_before  # one note, not "before:"/"after:" twice
    return TransformReport(record.transform, dict(record.options), size, cost_before, cost_after, record.replaced,
                           tuple(notes))
