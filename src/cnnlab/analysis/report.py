"""CostReport: the per-layer result of ``cnnlab.analyze`` and its renderers (table, JSON, CSV, Markdown, HTML).

The JSON layout (``CostReport.to_dict``) is a stable interface for scripts::

    {"model", "input_size", "batch_size", "dtype", "training", "conventions",
     "total": {"params", "trainable_params", "macs", "flops", "other_ops", "activation_bytes", ...},
     "layers": [{"name", "type", "depth", "calls", "input_shape", "output_shape", "params",
                 "trainable_params", "macs", "flops", "other_ops", "other_ops_by_kind",
                 "activation_bytes", "rf": {"size": [h, w], "jump": [h, w], "start": [h, w]} | null, ...}],
     "unknown_ops": [{"op", "layer", "count", "cost": "unknown cost", "output_shape"}]}

``layers`` holds every module in execution order (pre-order: a container before its children), the
containers included with their totals; modules that never ran are listed last with ``calls == 0``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab._text import md_table, terminal_width, wrap
from cnnlab._text import table as _text_table
from cnnlab.analysis.ops import CONVENTIONS, OTHER_KINDS
from cnnlab.analysis.receptive_field import ReceptiveField

# the default depth of a terminal table keeps it under this many rows (ResNet-50: every row; ResNet-1202: stages)
MAX_DEFAULT_ROWS = 250


class _DerivedTotals:
    """FLOPs, the other-op total and the frozen parameters, derived from the counts (never stored twice)."""

    params: int
    trainable_params: int
    macs: int
    other_ops_by_kind: dict[str, int]

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def other_ops(self) -> int:
        return sum(self.other_ops_by_kind.values())


@dataclass
class LayerCost(_DerivedTotals):
    """Costs of one module (a leaf layer or a container with the totals of everything it ran)."""

    name: str
    type: str
    depth: int
    calls: int = 0
    input_shape: list | None = None
    output_shape: list | None = None
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    other_ops_by_kind: dict[str, int] = field(default_factory=dict)
    activation_bytes: int = 0
    rf: ReceptiveField | None = None
    is_leaf: bool = True
    self_macs: int = 0
    self_other_ops: int = 0
    geometry: dict[str, Any] | None = None
    unknown_ops: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The layer as a JSON-ready dict (keys as documented in the module docstring)."""
        out: dict[str, Any] = {
            "name": self.name, "type": self.type, "depth": self.depth, "calls": self.calls,
            "is_container": not self.is_leaf,
            "input_shape": self.input_shape, "output_shape": self.output_shape,
            "params": self.params, "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params, "macs": self.macs, "flops": self.flops,
            "other_ops": self.other_ops, "other_ops_by_kind": dict(self.other_ops_by_kind),
            "activation_bytes": self.activation_bytes,
            "rf": self.rf.to_dict() if self.rf is not None else None,
            "self_macs": self.self_macs, "self_other_ops": self.self_other_ops,
        }
        if self.geometry:
            out["geometry"] = dict(self.geometry)
        if self.unknown_ops:
            out["unknown_ops"] = list(self.unknown_ops)
        return out


@dataclass
class CostReport(_DerivedTotals):
    """Result of ``cnnlab.analyze``: totals, every layer in execution order, and ops it could not cost."""

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    training: bool
    layers: list[LayerCost]
    params: int
    trainable_params: int
    macs: int
    other_ops_by_kind: dict[str, int]
    activation_bytes: int
    param_bytes: int
    unknown_ops: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unused_params(self) -> int:
        """Parameters of modules that never ran (auxiliary heads in eval mode): in ``params``, not in the pass.

        A holder never called itself (a ModuleDict) has its children's calls (``cost._uncalled_containers``),
        so the modules that did not run at the top of their subtree are those whose parent ran.
        """
        calls = {r.name: r.calls for r in self.layers}
        return sum(r.params for r in self.layers
                   if r.name and not r.calls and calls.get(r.name.rpartition(".")[0]))

    def layer(self, name: str) -> LayerCost:
        """The row of the module called ``name`` (``""`` is the whole model)."""
        for row in self.layers:
            if row.name == name:
                return row
        close = [r.name for r in self.layers if name and name in r.name][:5]
        raise KeyError(f"no layer named {name!r} in the report of {self.model}"
                       + (f"; did you mean {', '.join(close)}?" if close else ""))

    def at_depth(self, depth: int | None) -> list[LayerCost]:
        """Rows down to ``depth`` (1: stages, 2: blocks; None: every row), the model row excluded."""
        return [r for r in self.layers if r.depth >= 1 and (depth is None or r.depth <= depth)]

    def default_depth(self, max_rows: int = MAX_DEFAULT_ROWS) -> int | None:
        """The deepest depth whose table has at most ``max_rows`` rows (None: every row fits; at least 1).

        A 1000-layer network shows its stages instead of 6,000 rows; ResNet-50 (246 rows) shows them all.
        """
        counts = Counter(r.depth for r in self.layers if r.depth >= 1)
        rows, best = 0, 1
        for depth in sorted(counts):
            rows += counts[depth]
            if rows > max_rows:
                return best
            best = depth
        return None

    def __str__(self) -> str:
        """The terminal table (``print(report)``), at the default depth and fitted to the terminal's width."""
        return self.to_table(self.default_depth(), width=terminal_width())

    def __repr__(self) -> str:
        return (f"CostReport(model={self.model!r}, input={self.batch_size}x{'x'.join(map(str, self.input_size))}, "
                f"params={self.params:,}, macs={self.macs:,}, layers={len(self.layers)})")

    def _repr_html_(self) -> str:
        """What Jupyter shows for a report: totals, charts and the collapsible module tree (no script needed)."""
        from cnnlab.analysis.report_html import fragment

        return fragment(self)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (layout in the module docstring)."""
        return {
            "model": self.model,
            "input_size": list(self.input_size),
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "training": self.training,
            "conventions": CONVENTIONS,
            "total": {
                "params": self.params, "trainable_params": self.trainable_params,
                "frozen_params": self.frozen_params, "unused_params": self.unused_params,
                "macs": self.macs, "flops": self.flops, "other_ops": self.other_ops,
                "other_ops_by_kind": dict(self.other_ops_by_kind),
                "activation_bytes": self.activation_bytes, "param_bytes": self.param_bytes,
            },
            "layers": [row.to_dict() for row in self.layers],
            "unknown_ops": [dict(u) for u in self.unknown_ops],
        }

    # ---------------------------------------------------------------- renderers
    def to_json(self, indent: int | None = 1) -> str:
        """The report as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self, depth: int | None = None, width: int | None = None) -> str:
        """A fixed-width terminal table of the rows down to ``depth`` plus the totals; ``depth=0``: totals only.

        ``width``: fit the table to this many characters by leaving out the least important columns (RF jump,
        other ops, activation bytes, type, RF size, output: a footer names them) and then shortening layer names
        in the middle (``layer3.~.conv2``); None never shortens.
        """
        lines = [f"{self.model}: input {self.batch_size}x{'x'.join(map(str, self.input_size))} {self.dtype}"
                 f" ({'train' if self.training else 'eval'} mode)"]
        if depth != 0:
            rows = [_cells(r) for r in self.at_depth(depth)]
            rows.extend(_unknown_cells(u) for u in self.unknown_ops)
            body, dropped = _text_table(_COLUMNS, rows, [i >= 2 for i in range(len(_COLUMNS))], width,
                                        drop_order=_DROP_ORDER, shrink_order=(0, 1, 2))
            lines.extend(body)
            if dropped:
                lines.extend(wrap(f"(left out to fit {width} columns: {', '.join(dropped)}; a wider terminal or the "
                                  f"csv, md and html formats show them)", width, indent=1))
            hidden = len(self.at_depth(None)) - len(self.at_depth(depth))
            if hidden:
                deepest = max(r.depth for r in self.layers)
                lines.extend(wrap(f"({hidden:,} deeper rows not shown at depth {depth} of {deepest}: a larger depth "
                                  f"shows them)", width, indent=1))
        lines.append("")
        for line in self.totals_lines():
            lines.extend(wrap(line, width, indent=18))
        return "\n".join(lines)

    def totals_lines(self) -> list[str]:
        """Human-readable totals, one per line."""
        unused = self.unused_params
        lines = [
            f"params            {self.params:,} ({self.trainable_params:,} trainable, "
            f"{self.frozen_params:,} frozen; "
            f"{_bytes(self.param_bytes)})" + (f"; {unused:,} in modules that did not run" if unused else ""),
            f"MACs              {self.macs:,} ({_si(self.macs)}); FLOPs = 2 x MACs = {_si(self.flops)}",
            f"other ops         {self.other_ops:,} ("
            + ", ".join(f"{k} {_si(v)}" for k, v in self.other_ops_by_kind.items() if v) + ")",
            f"activations       {_bytes(self.activation_bytes)} allocated by the forward pass",
        ]
        root = self.layers[0] if self.layers else None
        if root is not None and root.rf is not None:
            lines.append(f"receptive field   {_rf_text(root.rf)} at the output")
        if self.unknown_ops:
            lines.append(f"unknown cost      {len(self.unknown_ops)} op(s): "
                         + ", ".join(f"{u['op']} in {u['layer'] or '(model)'}" for u in self.unknown_ops))
        return lines

    def to_csv(self, depth: int | None = None) -> str:
        """One CSV row per layer (down to ``depth``), unknown ops last with cost "unknown cost"."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        kinds = list(OTHER_KINDS)
        writer.writerow(["name", "type", "depth", "calls", "input_shape", "output_shape", "params",
                         "trainable_params", "macs", "flops", "other_ops", *kinds, "activation_bytes",
                         "rf_size_h", "rf_size_w", "rf_jump_h", "rf_jump_w", "rf_start_h", "rf_start_w", "cost"])
        for r in self.at_depth(depth) if depth != 0 else self.layers[:1]:  # depth 0: the model's row (totals)
            rf = r.rf.to_dict() if r.rf is not None else None
            rf_cells = [v for key in ("size", "jump", "start") for v in _hw(rf[key])] if rf else [""] * 6
            writer.writerow([r.name, r.type, r.depth, r.calls, _shape(r.input_shape), _shape(r.output_shape),
                             r.params, r.trainable_params, r.macs, r.flops, r.other_ops,
                             *[r.other_ops_by_kind.get(k, 0) for k in kinds], r.activation_bytes, *rf_cells,
                             "unknown cost" if r.unknown_ops else ""])
        for u in self.unknown_ops:
            writer.writerow([u["layer"], u["op"], "", u["count"], "", _shape(u.get("output_shape")), "", "", "",
                             "", "", *[""] * len(kinds), "", *[""] * 6, "unknown cost"])
        return buf.getvalue()

    def to_markdown(self, depth: int | None = None) -> str:
        """A Markdown table of the rows down to ``depth`` with the totals below; ``depth=0``: the totals only."""
        header = list(_COLUMNS)
        lines = [f"### {self.model} ({'x'.join(map(str, self.input_size))}, batch {self.batch_size})", ""]
        if depth != 0:
            rows = [[c.replace("|", "\\|") for c in _cells(r)] for r in self.at_depth(depth)]
            lines += md_table(header, rows + [_unknown_cells(u) for u in self.unknown_ops],
                              [i >= 2 for i in range(len(header))])
            lines.append("")
        lines.extend(f"- {line}" for line in self.totals_lines())
        return "\n".join(lines) + "\n"

    def to_html(self, depth: int | None = None) -> str:
        """A self-contained HTML page (inline SVG and CSS, one small script, nothing fetched from elsewhere).

        Totals; the architecture as a diagram (stages in order, Inception branches side by side, shortcuts drawn,
        runs of one block collapsed); MACs and parameters per stage as % of the model on one shared scale; the
        receptive field after every layer with axes and stage labels; the module tree (collapsible); the layer
        table down to ``depth`` with per-layer bars on one shared scale, sortable (children stay under their
        parents).
        """
        from cnnlab.analysis.report_html import page

        return page(self, depth)

    def render(self, fmt: str, depth: int | None = None) -> str:
        """Render as ``table``, ``json``, ``csv``, ``md`` or ``html``."""
        renderers = {"table": self.to_table, "csv": self.to_csv, "md": self.to_markdown, "html": self.to_html}
        if fmt == "json":
            return self.to_json()
        if fmt not in renderers:
            raise ValueError(f"unknown format {fmt!r}; choose one of table, json, csv, md, html")
        return renderers[fmt](depth)


_COLUMNS = ("layer", "type", "output", "params", "MACs", "other ops", "act. bytes", "RF size", "RF jump")
_DROP_ORDER = (8, 5, 6, 1, 7, 2)  # columns a narrow terminal loses first: RF jump, other ops, act. bytes, ...


def _cells(r: LayerCost) -> list[str]:
    indent = "  " * max(r.depth - 1, 0)
    rf = r.rf.to_dict() if r.rf is not None else None
    return [indent + r.name, r.type + (" (unknown cost)" if r.unknown_ops else "") + ("" if r.calls else " (not run)"),
            _shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}", f"{r.other_ops:,}", _bytes(r.activation_bytes),
            "x".join(map(str, rf["size"])) if rf else "-", "x".join(map(str, rf["jump"])) if rf else "-"]


def _sort_keys(r: LayerCost) -> list[Any]:
    rf = r.rf.to_dict() if r.rf is not None else None
    return [r.name, r.type, _numel(r.output_shape), r.params, r.macs, r.other_ops, r.activation_bytes,
            max(rf["size"]) if rf else -1, max(rf["jump"]) if rf else -1]


def _numel(shape: Any) -> int:
    """Elements of an output shape (several outputs: their sum), so that shapes sort by size."""
    if not shape:
        return 0
    if isinstance(shape[0], list):
        return sum(_numel(s) for s in shape)
    return math.prod(int(v) for v in shape)


def _unknown_cells(u: dict[str, Any]) -> list[str]:
    return [u["layer"] or "(model)", u["op"], _shape(u.get("output_shape")), "", "unknown cost", "unknown cost",
            "", "", ""]


def _hw(values: Sequence[Any]) -> list[Any]:
    values = list(values)
    return (values + [""] * 2)[:2] if len(values) <= 2 else values[-2:]


def _shape(shape: Any) -> str:
    if shape is None:
        return "-"
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape(s) for s in shape)
    return "x".join(map(str, shape))


def _rf_text(rf: ReceptiveField) -> str:
    d = rf.to_dict()
    return f"{'x'.join(map(str, d['size']))} (jump {'x'.join(map(str, d['jump']))})"


def _si(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)


def _bytes(value: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value} B"


def _pct(part: int, total: int) -> float:
    return 100.0 * part / total if total else 0.0
