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
import html
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnlab._text import table as _text_table
from cnnlab._text import terminal_width, wrap
from cnnlab.analysis.receptive_field import ReceptiveField

CONVENTIONS = (
    "MACs: multiply-accumulates of convolutions (H_out*W_out*C_out*C_in/groups*k_h*k_w per image) and "
    "matrix products (m*k*n); FLOPs = 2 x MACs. other_ops, never folded into MACs: bias 1 per output "
    "element, normalization 2 per element, activation and elementwise ops 1 per output element, pooling "
    "k_h*k_w per output element (adaptive / global pooling and reductions: 1 per input element). "
    "activation_bytes of a layer: bytes of its output; total: bytes of every tensor the forward allocates. "
    "Receptive field in input pixels, unclipped by the border: size, jump (stride product), start (centre "
    "of the first unit)."
)

OTHER_KINDS = ("bias", "norm", "activation", "pool", "elementwise", "reduction")

# the default depth of a terminal table keeps it under this many rows (ResNet-50: every row; ResNet-1202: stages)
MAX_DEFAULT_ROWS = 250


class _DerivedTotals:
    """FLOPs and the other-op total, derived from ``macs`` and ``other_ops_by_kind`` (never stored twice)."""

    macs: int
    other_ops_by_kind: dict[str, int]

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

    @property
    def frozen_params(self) -> int:
        return self.params - self.trainable_params

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
        """Parameters of modules that never ran (auxiliary heads in eval mode): in ``params``, not in the pass."""
        called = {""}
        for r in self.layers:  # a container that is never called itself (ModuleDict) ran if a child did
            if r.calls:
                parts = r.name.split(".")
                called.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        total = 0
        for r in self.layers:
            parent = r.name.rpartition(".")[0] if "." in r.name else ""
            if r.name not in called and parent in called:
                total += r.params
        return total

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
        counts: dict[int, int] = {}
        for r in self.layers:
            if r.depth >= 1:
                counts[r.depth] = counts.get(r.depth, 0) + 1
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
        return f'<div class="cnnlab-report">{_STYLE}{self._html_body(table_depth=None, table=False)}</div>'

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
                "frozen_params": self.params - self.trainable_params, "unused_params": self.unused_params,
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
        frozen = self.params - self.trainable_params
        unused = self.unused_params
        lines = [
            f"params            {self.params:,} ({self.trainable_params:,} trainable, {frozen:,} frozen; "
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
            lines += ["| " + " | ".join(header) + " |",
                      "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
            for r in self.at_depth(depth):
                lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
            for u in self.unknown_ops:
                lines.append("| " + " | ".join(_unknown_cells(u)) + " |")
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
        return _HTML_TEMPLATE.format(title=html.escape(f"cnnlab: {self.model}"), style=_STYLE,
                                     body=self._html_body(table_depth=depth, table=True), script=_SCRIPT)

    def _html_body(self, table_depth: int | None, table: bool) -> str:
        stages = [r for r in self.layers if r.depth == 1]
        leaves = [r for r in self.layers if r.is_leaf and r.rf is not None and r.calls]
        unknown = "".join(f"<li>{html.escape(u['op'])} in {html.escape(u['layer'] or '(model)')} "
                          f"({u['count']} call(s)): unknown cost</li>" for u in self.unknown_ops)
        parts = [
            f"<h1>{html.escape(self.model)} at {'x'.join(map(str, self.input_size))}, batch {self.batch_size} "
            f"({'train' if self.training else 'eval'} mode)</h1>",
            "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in self.totals_lines()) + "</ul>",
            f"<h2>Ops with unknown cost</h2><ul>{unknown}</ul>" if unknown else "",
            "<h2>Architecture</h2>",
            '<p class="note">One box per stage, in execution order; branches that run side by side and are '
            'concatenated are drawn side by side; dashed red lines are shortcuts added to a block\'s output. '
            'Hover over a box for its details.</p>',
            _diagram(self),
            "<h2>Where the cost is: each stage's share of the model</h2>",
            _stage_chart(stages, self.macs, self.params),
            "<h2>Receptive field after each layer</h2>",
            _rf_chart(leaves, self.input_size),
            "<h2>Module tree</h2>",
            '<p class="note">Click a module to open it. Shares are of the whole model; a module\'s numbers include '
            'everything inside it.</p>',
            _tree(self),
        ]
        if table and table_depth != 0:
            rows = self.at_depth(table_depth)
            hidden = len(self.at_depth(None)) - len(rows)
            parts += [
                "<h2>Layers</h2>",
                '<p class="note">Click a column to sort; a module\'s children stay under it. Bars: share of the '
                'model\'s MACs and parameters, on one scale (a full bar is 100%).'
                + (f" {hidden:,} deeper rows are not shown (depth {table_depth})." if hidden else "") + "</p>",
                _layer_table(rows, self.macs, self.params),
            ]
        parts.append(f'<p class="note">{html.escape(CONVENTIONS)}</p>')
        return "\n".join(p for p in parts if p)

    def render(self, fmt: str, depth: int | None = None) -> str:
        """Render as ``table``, ``json``, ``csv``, ``md`` or ``html``."""
        renderers = {"table": self.to_table, "csv": self.to_csv, "md": self.to_markdown, "html": self.to_html}
        if fmt == "json":
            return self.to_json()
        if fmt not in renderers:
            raise ValueError(f"unknown format {fmt!r}; choose one of table, json, csv, md, html")
        return renderers[fmt](depth)


_NUM_CELL = ' class="num"'
_COLUMNS = ("layer", "type", "output", "params", "MACs", "other ops", "act. bytes", "RF size", "RF jump")
_DROP_ORDER = (8, 5, 6, 1, 7, 2)  # columns a narrow terminal loses first: RF jump, other ops, act. bytes, ...
_MACS_COLOUR, _PARAMS_COLOUR = "#4c72b0", "#dd8452"


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
    n = 1
    for v in shape:
        n *= int(v)
    return n


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


def _stage_chart(stages: list[LayerCost], total_macs: int, total_params: int) -> str:
    """Inline SVG: per stage, its MACs and its parameters as % of the model, both on one 0-100% axis."""
    if not stages:
        return "<p>(no stages)</p>"
    row_h, label_w, bar_w, top = 34, 170, 440, 44
    height = top + row_h * len(stages) + 26
    e = html.escape
    parts = [f'<svg class="chart" role="img" aria-label="MACs and parameters per stage" width="{label_w + bar_w + 130}" '
             f'height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect x="{label_w}" y="0" width="12" height="10" fill="{_MACS_COLOUR}"/>'
             f'<text x="{label_w + 16}" y="10">MACs ({_si(total_macs)} in all)</text>',
             f'<rect x="{label_w + 170}" y="0" width="12" height="10" fill="{_PARAMS_COLOUR}"/>'
             f'<text x="{label_w + 186}" y="10">parameters ({_si(total_params)} in all)</text>']
    for tick in (0, 25, 50, 75, 100):  # the shared scale: a full bar is the whole model
        x = label_w + bar_w * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{height - 22}" stroke="#ddd"/>'
                     f'<text x="{x:.1f}" y="{height - 8}" text-anchor="middle" fill="#555">{tick}%</text>')
    for i, s in enumerate(stages):
        y = top + i * row_h
        pm, pp = _pct(s.macs, total_macs), _pct(s.params, total_params)
        wm, wp = bar_w * min(pm, 100) / 100, bar_w * min(pp, 100) / 100
        name = (s.name if len(s.name) <= 22 else s.name[:21] + "~") + ("" if s.calls else " (not run)")
        parts.append(f'<text x="0" y="{y + 17}"><title>{e(s.name)} ({e(s.type)})</title>{e(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{wm:.1f}" height="12" fill="{_MACS_COLOUR}">'
                     f'<title>{e(s.name)}: {s.macs:,} MACs, {pm:.1f}% of the model</title></rect>')
        parts.append(f'<text x="{label_w + wm + 4:.1f}" y="{y + 10}">{pm:.1f}% ({_si(s.macs)})</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 14}" width="{wp:.1f}" height="12" fill="{_PARAMS_COLOUR}">'
                     f'<title>{e(s.name)}: {s.params:,} parameters, {pp:.1f}% of the model</title></rect>')
        parts.append(f'<text x="{label_w + wp + 4:.1f}" y="{y + 24}">{pp:.1f}% ({_si(s.params)})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(top: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 x 10^k) giving about ``ticks`` intervals up to ``top``."""
    raw = max(top, 1e-9) / ticks
    scale = 10 ** math.floor(math.log10(raw))
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= raw)


def _rf_chart(leaves: list[LayerCost], input_size: Sequence[int]) -> str:
    """Inline SVG: receptive field size (larger of H, W) after each layer, with axes, ticks and stage bands."""
    if not leaves:
        return "<p>(no receptive field: the model has no spatial input)</p>"
    e = html.escape
    sizes = [float(max(r.rf.size)) for r in leaves if r.rf is not None]
    image = max(input_size[1:]) if len(input_size) > 1 else None
    width, height, left, right, top, bottom = 760, 360, 60, 20, 94, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    step = _nice_step(max(sizes + ([image] if image else [])))
    y_max = step * math.ceil(max(sizes + ([image] if image else [])) / step)
    dx = plot_w / max(len(sizes) - 1, 1)

    def px(i: int) -> float:
        return left + i * dx

    def py(v: float) -> float:
        return top + plot_h - plot_h * v / y_max

    parts = [f'<svg class="chart" role="img" aria-label="receptive field per layer" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">']
    # stage bands: consecutive layers of the same top-level module, shaded alternately and named at the top
    bands: list[tuple[str, int, int]] = []
    for i, r in enumerate(leaves):
        stage = r.name.split(".")[0]
        if bands and bands[-1][0] == stage:
            bands[-1] = (stage, bands[-1][1], i)
        else:
            bands.append((stage, i, i))
    last_label = -math.inf
    for k, (stage, a, b) in enumerate(bands):
        x0, x1 = px(a) - dx / 2, px(b) + dx / 2
        x0, x1 = max(x0, left), min(x1, left + plot_w)
        if k % 2 == 0:
            parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{x1 - x0:.1f}" height="{plot_h}" fill="#f0f0f5"/>')
        xm = (x0 + x1) / 2
        if xm - last_label >= 12:  # stage names at a slant above the plot, never overlapping; hover: its layers
            last_label = xm
            name = stage if len(stage) <= 14 else stage[:13] + "~"
            parts.append(f'<line x1="{xm:.1f}" y1="{top - 4}" x2="{xm:.1f}" y2="{top}" stroke="#888"/>'
                         f'<text x="{xm:.1f}" y="{top - 7}" transform="rotate(-50 {xm:.1f} {top - 7})" '
                         f'font-size="10" fill="#444"><title>{e(stage)}: layers {a + 1}-{b + 1}</title>'
                         f'{e(name)}</text>')
    v = 0.0
    while v <= y_max + 1e-9:  # y axis: round ticks and grid lines
        parts.append(f'<line x1="{left}" y1="{py(v):.1f}" x2="{left + plot_w}" y2="{py(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += step
    n = len(sizes)
    xstep = max(1, int(_nice_step(n, 8)))
    for i in range(0, n, xstep):  # x axis: layer numbers in execution order
        parts.append(f'<line x1="{px(i):.1f}" y1="{top + plot_h}" x2="{px(i):.1f}" y2="{top + plot_h + 4}" '
                     f'stroke="black"/><text x="{px(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{i + 1}</text>')
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>'
                 f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="black"/>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">layer (execution order, '
                 f'{n} layers)</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2})">receptive field (pixels)</text>')
    if image:
        parts.append(f'<line x1="{left}" y1="{py(image):.1f}" x2="{left + plot_w}" y2="{py(image):.1f}" '
                     f'stroke="#c44e52" stroke-dasharray="5 4"/><text x="{left + plot_w - 4}" y="{py(image) - 4:.1f}" '
                     f'text-anchor="end" fill="#c44e52">input {image} px</text>')
    points = " ".join(f"{px(i):.1f},{py(s):.1f}" for i, s in enumerate(sizes))
    parts.append(f'<polyline points="{points}" fill="none" stroke="{_MACS_COLOUR}" stroke-width="1.5"/>')
    if n <= 400:  # a dot per layer carries its name; 6,000 dots would only slow the page down
        parts.extend(f'<circle cx="{px(i):.1f}" cy="{py(s):.1f}" r="2" fill="{_MACS_COLOUR}">'
                     f'<title>{e(r.name)}: {s:g} px</title></circle>' for i, (r, s) in enumerate(zip(leaves, sizes)))
    parts.append("</svg>")
    return "".join(parts)


def _tree(report: CostReport) -> str:
    """Nested <details>: every module with its type, output, parameters and MACs (and shares of the model)."""
    children: dict[str, list[LayerCost]] = {}
    for r in report.layers[1:]:
        children.setdefault(r.name.rpartition(".")[0] if r.depth > 1 else "", []).append(r)
    e = html.escape
    total_macs, total_params = report.macs, report.params
    out: list[str] = []

    def line(r: LayerCost, label: str) -> str:
        rf = f", RF {_rf_text(r.rf)}" if r.rf is not None and r.calls else ""
        share = f"{_pct(r.macs, total_macs):.1f}% of MACs, {_pct(r.params, total_params):.1f}% of params"
        return (f'<span class="mod">{e(label)}</span> <span class="type">{e(r.type)}'
                f'{"" if r.calls else " (not run)"}</span> <span class="dim">{e(_shape(r.output_shape))}; '
                f"{r.params:,} params, {r.macs:,} MACs ({share}){e(rf)}</span>")

    def walk(parent: str) -> None:
        for r in children.get(parent, []):
            label = r.name.rpartition(".")[2] if r.depth > 1 else r.name
            if r.name in children:
                out.append(f"<details><summary>{line(r, label)}</summary>")
                walk(r.name)
                out.append("</details>")
            else:
                out.append(f'<div class="leaf">{line(r, label)}</div>')

    root = report.layers[0] if report.layers else None
    if root is None:
        return "<p>(empty model)</p>"
    out.append(f'<details class="tree" open><summary>{line(root, report.model)}</summary>')
    walk("")
    out.append("</details>")
    return "".join(out)


def _layer_table(rows: list[LayerCost], total_macs: int, total_params: int) -> str:
    """The layer table: a row per module (its parent named, for sorting), bars of its shares on one scale."""
    header = list(_COLUMNS[:5]) + ["MACs share", "params share"] + list(_COLUMNS[5:])
    head = "".join(f'<th onclick="sortBy({i})">{html.escape(h)}</th>' for i, h in enumerate(header))
    body = []
    for index, r in enumerate(rows):
        cells, keys = _cells(r), _sort_keys(r)
        keys[0] = index  # the layer column sorts back to execution order
        tds = [f'<td{_NUM_CELL if i >= 2 else ""} data-v="{html.escape(str(v))}">{html.escape(c)}</td>'
               for i, (c, v) in enumerate(zip(cells, keys))]
        bars = [_bar_cell(_pct(r.macs, total_macs), _MACS_COLOUR), _bar_cell(_pct(r.params, total_params),
                                                                             _PARAMS_COLOUR)]
        parent = r.name.rpartition(".")[0] if r.depth > 1 else ""
        body.append(f'<tr data-name="{html.escape(r.name)}" data-parent="{html.escape(parent)}">'
                    + "".join(tds[:5] + bars + tds[5:]) + "</tr>")
    return (f'<table id="layers"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body)
            + "\n</tbody></table>")


def _bar_cell(pct: float, colour: str) -> str:
    return (f'<td class="bar" data-v="{pct:.6f}"><span style="width:{min(pct, 100):.2f}%;background:{colour}">'
            f'</span><em>{pct:.1f}%</em></td>')


_STYLE = """<style>
.cnnlab-report { font-family: sans-serif; color: #222; }
.cnnlab-report table { border-collapse: collapse; font-size: 13px; }
.cnnlab-report th, .cnnlab-report td { border: 1px solid #ccc; padding: 2px 6px; white-space: pre; }
.cnnlab-report th { background: #eee; cursor: pointer; position: sticky; top: 0; }
.cnnlab-report td.num { text-align: right; font-variant-numeric: tabular-nums; }
.cnnlab-report td.bar { position: relative; width: 120px; min-width: 120px; padding: 0; }
.cnnlab-report td.bar span { position: absolute; left: 0; top: 2px; bottom: 2px; opacity: 0.75; }
.cnnlab-report td.bar em { position: relative; font-style: normal; font-size: 11px; padding-left: 4px; }
.cnnlab-report .note { color: #555; font-size: 12px; max-width: 60em; }
.cnnlab-report details { margin-left: 1.2em; font-size: 13px; }
.cnnlab-report details.tree { margin-left: 0; }
.cnnlab-report summary { cursor: pointer; }
.cnnlab-report .leaf { margin-left: 2.4em; font-size: 13px; }
.cnnlab-report .mod { font-weight: bold; }
.cnnlab-report .type { color: #4c72b0; }
.cnnlab-report .dim { color: #555; }
</style>"""

_SCRIPT = """<script>
// sort the layer table by a column, keeping every module's children right under it, each group sorted
let sortState = [-1, 1];
function sortBy(col) {
  const body = document.querySelector('#layers tbody');
  const rows = Array.from(body.rows);
  sortState = [col, sortState[0] === col ? -sortState[1] : 1];
  const dir = sortState[1];
  const value = r => r.cells[col].dataset.v;
  const compare = (a, b) => {
    const x = value(a), y = value(b), nx = parseFloat(x), ny = parseFloat(y);
    return dir * ((!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y));
  };
  const names = new Set(rows.map(r => r.dataset.name));
  const kids = new Map();
  for (const r of rows) {
    const parent = names.has(r.dataset.parent) ? r.dataset.parent : '';
    if (!kids.has(parent)) kids.set(parent, []);
    kids.get(parent).push(r);
  }
  const ordered = [];
  const visit = parent => {
    for (const r of (kids.get(parent) || []).sort(compare)) { ordered.push(r); visit(r.dataset.name); }
  };
  visit('');
  ordered.forEach(r => body.appendChild(r));
}
</script>"""

_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
{style}
</head><body style="margin: 2em"><div class="cnnlab-report">
{body}
</div>
{script}
</body></html>
"""


# ---------------------------------------------------------------- architecture diagram
_BOX_W, _ROW_H, _GAP, _FRAME_W, _DIAGRAM_W = 380, 30, 14, 600, 780


def _children(report: CostReport) -> dict[str, list[LayerCost]]:
    kids: dict[str, list[LayerCost]] = {}
    for r in report.layers[1:]:
        kids.setdefault(r.name.rpartition(".")[0] if r.depth > 1 else "", []).append(r)
    return kids


def _channels(shape: Any) -> int | None:
    return int(shape[1]) if shape and not isinstance(shape[0], list) and len(shape) >= 2 else None


def _is_residual(r: LayerCost, kids: dict[str, list[LayerCost]]) -> bool:
    """A container whose own code (not a child's) runs an elementwise op: the add of a shortcut."""
    own = r.other_ops_by_kind.get("elementwise", 0) - sum(c.other_ops_by_kind.get("elementwise", 0)
                                                          for c in kids.get(r.name, []))
    return not r.is_leaf and own > 0


def _parallel(r: LayerCost, kids: dict[str, list[LayerCost]]) -> tuple[int, int] | None:
    """(start, end) of the children that run side by side on one input and are concatenated, or None.

    Two or more consecutive children with the same input shape whose output channels add up to the channels of
    what follows (the next child's input or the module's output): Inception branches, a fire module's expands.
    """
    children = [c for c in kids.get(r.name, []) if c.calls]
    best = None
    i = 0
    while i < len(children):
        j = i + 1
        while j < len(children) and children[j].input_shape == children[i].input_shape:
            j += 1
        if j - i >= 2:
            outs = [_channels(c.output_shape) for c in children[i:j]]
            after = _channels(children[j].input_shape) if j < len(children) else _channels(r.output_shape)
            if None not in outs and after is not None and sum(outs) == after:  # type: ignore[arg-type]
                best = (i, j) if best is None or j - i > best[1] - best[0] else best
        i = j
    return best


def _ops_text(r: LayerCost, report: CostReport) -> str:
    """A branch as its operations: ``1x1 96 > 3x3 128``, ``3x3 max pool > 1x1 32``."""
    parts = []
    for leaf in report.layers:
        if not (leaf.is_leaf and leaf.calls and (leaf.name == r.name or leaf.name.startswith(r.name + "."))):
            continue
        g = leaf.geometry or {}
        kernel = "x".join(map(str, g.get("kernel", []))) if g.get("kernel") else ""
        stride = "/" + "x".join(map(str, g["stride"])) if any(s != 1 for s in g.get("stride", [])) else ""
        if g.get("op") == "conv":
            parts.append(f"{kernel}{stride} {g.get('out_channels')}")
        elif "pool" in str(g.get("op", "")):
            parts.append(f"{kernel}{stride} {g['op'].replace('_pool', '')} pool")
        elif leaf.type == "Linear":
            parts.append(f"fc {_channels(leaf.output_shape) or ''}".strip())
    return " > ".join(parts) or r.type


def _fit(text: str, width_px: float, char_px: float = 5.8) -> str:
    room = max(int(width_px / char_px), 4)
    return text if len(text) <= room else text[:room - 1] + "~"


def _diagram(report: CostReport) -> str:
    """Inline SVG: the network top to bottom, one item per stage; Inception-style branches side by side, skip
    connections drawn, runs of the same block collapsed into one box (``18 x BasicBlock``)."""
    kids = _children(report)
    stages = [r for r in report.layers if r.depth == 1 and r.calls]
    # a container that is never called itself but whose children run (a ModuleDict of auxiliary heads in train
    # mode) feeds on the trunk from the side: drawn apart, after the output
    side = [r for r in report.layers if r.depth == 1 and not r.calls and any(c.calls for c in kids.get(r.name, []))]
    if not stages:
        return "<p>(no stages)</p>"
    e = html.escape
    cx = _DIAGRAM_W / 2
    y = 10
    parts: list[str] = []

    def arrow(y0: float, y1: float, x0: float = cx, x1: float = cx) -> None:
        parts.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1 - 2:.1f}" stroke="#666" '
                     f'marker-end="url(#arrow)"/>')

    def box(x: float, top: float, w: float, title: str, sub: str, fill: str = "#eef2f8", tip: str = "") -> None:
        parts.append(f'<g><title>{e(tip or title)}</title><rect x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" '
                     f'height="{_ROW_H}" rx="4" fill="{fill}" stroke="#8a9bb8"/>'
                     f'<text x="{x + w / 2:.1f}" y="{top + 13:.1f}" text-anchor="middle" font-weight="bold">'
                     f'{e(_fit(title, w - 8))}</text><text x="{x + w / 2:.1f}" y="{top + 25:.1f}" '
                     f'text-anchor="middle" fill="#555">{e(_fit(sub, w - 8))}</text></g>')

    def skip(top: float, bottom: float, right: float, label: str) -> None:
        parts.append(f'<path d="M {cx:.1f} {top:.1f} H {right:.1f} V {bottom:.1f} H {cx + 9:.1f}" fill="none" '
                     f'stroke="#c44e52" stroke-dasharray="4 3" marker-end="url(#arrow-red)"/>'
                     f'<circle cx="{cx:.1f}" cy="{bottom:.1f}" r="8" fill="white" stroke="#c44e52"/>'
                     f'<text x="{cx:.1f}" y="{bottom + 4:.1f}" text-anchor="middle" fill="#c44e52">+</text>'
                     f'<text x="{right + 4:.1f}" y="{(top + bottom) / 2:.1f}" fill="#c44e52">{e(label)}</text>')

    box(cx - _BOX_W / 2, y, _BOX_W, "input", f"{report.batch_size}x{'x'.join(map(str, report.input_size))}",
        fill="#f4f4f4")
    y += _ROW_H
    for s in stages:
        share = f"{_pct(s.macs, report.macs):.1f}% of MACs"
        sub = f"{s.type} -> {_shape(s.output_shape)}; {share}"
        children = [c for c in kids.get(s.name, []) if c.calls]
        group = _parallel(s, kids)
        arrow(y, y + _GAP)
        y += _GAP
        if group is not None:  # branches side by side inside a frame, then their concatenation
            a, b = group
            top = y
            frame_x = cx - _FRAME_W / 2
            inner = [("box", c) for c in children[:a]] + [("branches", children[a:b])] + \
                    [("box", c) for c in children[b:]]
            height = 22 + sum(_ROW_H + _GAP if k == "box" else _ROW_H + 2 * _GAP + 10 for k, _ in inner)
            parts.append(f'<rect x="{frame_x:.1f}" y="{top:.1f}" width="{_FRAME_W}" height="{height:.1f}" rx="6" '
                         f'fill="#fafafa" stroke="#bbb"/><text x="{frame_x + 8:.1f}" y="{top + 15:.1f}" '
                         f'font-weight="bold">{e(s.name)}</text><text x="{frame_x + _FRAME_W - 8:.1f}" '
                         f'y="{top + 15:.1f}" text-anchor="end" fill="#555">{e(_fit(sub, _FRAME_W - 140))}</text>')
            yy = top + 22
            for kind, item in inner:
                if kind == "box":
                    box(cx - _BOX_W / 2, yy, _BOX_W, item.name.rpartition(".")[2], _ops_text(item, report))
                    yy += _ROW_H
                    arrow(yy, yy + _GAP)
                    yy += _GAP
                    continue
                n = len(item)
                bw = (_FRAME_W - 16 - 8 * (n - 1)) / n
                for k, c in enumerate(item):
                    bx = frame_x + 8 + k * (bw + 8)
                    box(bx, yy, bw, c.name.rpartition(".")[2], _ops_text(c, report),
                        tip=f"{c.name}: {_ops_text(c, report)} -> {_shape(c.output_shape)}")
                    arrow(yy + _ROW_H, yy + _ROW_H + _GAP + 4, bx + bw / 2, cx)
                yy += _ROW_H + _GAP + 4
                joined = list(item[0].output_shape)
                joined[1] = sum(_channels(c.output_shape) or 0 for c in item)
                parts.append(f'<circle cx="{cx:.1f}" cy="{yy + 3:.1f}" r="3" fill="#666"/><text x="{cx + 10:.1f}" '
                             f'y="{yy + 7:.1f}" fill="#555">concat -&gt; {e(_shape(joined))}</text>')
                yy += 6
                arrow(yy, yy + _GAP)
                yy += _GAP
            y = top + height
            if _is_residual(s, kids):
                skip(top - _GAP / 2, y - 4, frame_x + _FRAME_W + 6, "shortcut")
            continue
        blocks = children if len(children) >= 2 and len({c.type for c in children}) == 1 else []
        if blocks:  # a run of the same block: one box, its shortcut drawn when each block has one
            residual = all(_is_residual(c, kids) for c in blocks)
            inner_group = _parallel(blocks[0], kids)
            what = f"{len(blocks)} x {blocks[0].type}" + (" (branches)" if inner_group else "")
            box(cx - _BOX_W / 2, y, _BOX_W, f"{s.name}: {what}", sub, tip=f"{s.name}: {what}; {sub}")
            if residual:
                skip(y + 4, y + _ROW_H + 6, cx + _BOX_W / 2 + 10, "shortcut in each block")
                y += 6
        else:
            box(cx - _BOX_W / 2, y, _BOX_W, s.name, sub, tip=f"{s.name}: {_ops_text(s, report)}")
            if _is_residual(s, kids):
                skip(y + 4, y + _ROW_H + 6, cx + _BOX_W / 2 + 10, "shortcut")
                y += 6
        y += _ROW_H
    arrow(y, y + _GAP)
    y += _GAP
    out = stages[-1].output_shape
    box(cx - _BOX_W / 2, y, _BOX_W, "output", _shape(out), fill="#f4f4f4")
    y += _ROW_H + 10
    for r in side:
        heads = [c for c in kids.get(r.name, []) if c.calls]
        inputs = ", ".join(sorted({_shape(c.input_shape) for c in heads}))
        parts.append(f'<g><title>{e(r.name)}: {", ".join(c.name for c in heads)}</title><rect x="{cx - _BOX_W / 2:.1f}" '
                     f'y="{y:.1f}" width="{_BOX_W}" height="{_ROW_H}" rx="4" fill="#fff8ee" stroke="#dd8452" '
                     f'stroke-dasharray="4 3"/><text x="{cx:.1f}" y="{y + 13:.1f}" text-anchor="middle" '
                     f'font-weight="bold">{e(_fit(f"{r.name}: {len(heads)} x {heads[0].type}", _BOX_W - 8))}</text>'
                     f'<text x="{cx:.1f}" y="{y + 25:.1f}" text-anchor="middle" fill="#555">'
                     f'{e(_fit(f"side outputs from the trunk: {inputs}", _BOX_W - 8))}</text></g>')
        y += _ROW_H + 10
    skipped = [r.name for r in report.layers if r.depth == 1 and not r.calls and r not in side]
    if skipped:
        parts.append(f'<text x="10" y="{y + 4:.1f}" fill="#555">not run in {"train" if report.training else "eval"} '
                     f'mode: {e(", ".join(skipped))}</text>')
        y += 16
    defs = ('<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#666"/></marker><marker id="arrow-red" '
            'viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto">'
            '<path d="M0,0 L8,4 L0,8 z" fill="#c44e52"/></marker></defs>')
    return (f'<svg class="chart diagram" role="img" aria-label="architecture of {e(report.model)}" '
            f'width="{_DIAGRAM_W}" height="{y:.0f}" font-family="sans-serif" font-size="11">{defs}'
            + "".join(parts) + "</svg>")
