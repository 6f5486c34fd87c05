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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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

    def to_table(self, depth: int | None = None) -> str:
        """A fixed-width terminal table of the rows down to ``depth`` plus the totals."""
        rows = [_cells(r) for r in self.at_depth(depth)]
        rows.extend(_unknown_cells(u) for u in self.unknown_ops)
        header = list(_COLUMNS)
        widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
                  for i in range(len(header))]
        lines = [f"{self.model}: input {self.batch_size}x{'x'.join(map(str, self.input_size))} {self.dtype}"
                 f" ({'train' if self.training else 'eval'} mode)"]
        sep = "  "
        lines.append(sep.join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths))))
        lines.append(sep.join("-" * w for w in widths))
        for r in rows:
            lines.append(sep.join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        lines.append("")
        lines.extend(self.totals_lines())
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
        for r in self.at_depth(depth):
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
        """A Markdown table of the rows down to ``depth`` with the totals below."""
        header = list(_COLUMNS)
        lines = [f"### {self.model} ({'x'.join(map(str, self.input_size))}, batch {self.batch_size})", "",
                 "| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in
                                                                   range(len(header))) + "|"]
        for r in self.at_depth(depth):
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in _cells(r)) + " |")
        for u in self.unknown_ops:
            lines.append("| " + " | ".join(_unknown_cells(u)) + " |")
        lines.append("")
        lines.extend(f"- {line}" for line in self.totals_lines())
        return "\n".join(lines) + "\n"

    def to_html(self, depth: int | None = None) -> str:
        """A self-contained HTML page: sortable table, MACs/params per stage bars, receptive field growth."""
        rows = self.at_depth(depth)
        stages = [r for r in self.layers if r.depth == 1]
        table_rows = "\n".join(
            "<tr>" + "".join(f"<td{_NUM_CELL if i >= 2 else ''} data-v=\"{html.escape(str(v))}\">"
                             f"{html.escape(c)}</td>" for i, (c, v) in enumerate(zip(_cells(r), _sort_keys(r))))
            + "</tr>" for r in rows)
        unknown = "".join(f"<li>{html.escape(u['op'])} in {html.escape(u['layer'] or '(model)')} "
                          f"({u['count']} call(s)): unknown cost</li>" for u in self.unknown_ops)
        totals = "".join(f"<li>{html.escape(line)}</li>" for line in self.totals_lines())
        header = "".join(f"<th onclick=\"sortBy({i})\">{html.escape(h)}</th>" for i, h in enumerate(_COLUMNS))
        return _HTML_TEMPLATE.format(
            title=html.escape(f"cnnlab: {self.model}"),
            heading=html.escape(f"{self.model} at {'x'.join(map(str, self.input_size))}, batch {self.batch_size}"),
            totals=totals,
            unknown=f"<h2>Ops with unknown cost</h2><ul>{unknown}</ul>" if unknown else "",
            conventions=html.escape(CONVENTIONS),
            stage_chart=_bar_chart(stages),
            rf_chart=_rf_chart([r for r in self.layers if r.is_leaf and r.rf is not None and r.calls]),
            header=header,
            rows=table_rows,
        )

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


def _cells(r: LayerCost) -> list[str]:
    indent = "  " * max(r.depth - 1, 0)
    rf = r.rf.to_dict() if r.rf is not None else None
    return [indent + r.name, r.type + (" (unknown cost)" if r.unknown_ops else "") + ("" if r.calls else " (not run)"),
            _shape(r.output_shape), f"{r.params:,}", f"{r.macs:,}", f"{r.other_ops:,}", _bytes(r.activation_bytes),
            "x".join(map(str, rf["size"])) if rf else "-", "x".join(map(str, rf["jump"])) if rf else "-"]


def _sort_keys(r: LayerCost) -> list[Any]:
    rf = r.rf.to_dict() if r.rf is not None else None
    return [r.name, r.type, _shape(r.output_shape), r.params, r.macs, r.other_ops, r.activation_bytes,
            max(rf["size"]) if rf else -1, max(rf["jump"]) if rf else -1]


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


def _bar_chart(stages: list[LayerCost]) -> str:
    """Inline SVG: one pair of bars per stage (MACs, params), each scaled to its own maximum."""
    if not stages:
        return "<p>(no stages)</p>"
    max_macs = max(s.macs for s in stages) or 1
    max_params = max(s.params for s in stages) or 1
    row_h, label_w, bar_w = 34, 160, 420
    parts = [f'<svg width="{label_w + bar_w + 120}" '
             f'height="{row_h * len(stages) + 30}" font-family="sans-serif" font-size="12">',
             '<rect x="0" y="0" width="12" height="10" fill="#4c72b0"/><text x="16" y="10">MACs</text>',
             '<rect x="70" y="0" width="12" height="10" fill="#dd8452"/><text x="86" y="10">params</text>']
    for i, s in enumerate(stages):
        y = 22 + i * row_h
        wm = bar_w * s.macs / max_macs
        wp = bar_w * s.params / max_params
        parts.append(f'<text x="0" y="{y + 12}">{html.escape(s.name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{wm:.1f}" height="12" fill="#4c72b0">'
                     f'<title>{s.macs:,} MACs</title></rect>')
        parts.append(f'<text x="{label_w + wm + 4:.1f}" y="{y + 10}">{_si(s.macs)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 14}" width="{wp:.1f}" height="12" fill="#dd8452">'
                     f'<title>{s.params:,} params</title></rect>')
        parts.append(f'<text x="{label_w + wp + 4:.1f}" y="{y + 24}">{_si(s.params)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rf_chart(leaves: list[LayerCost]) -> str:
    """Inline SVG polyline: receptive field size (largest of H, W) after each leaf layer, in order."""
    if not leaves:
        return "<p>(no receptive field: the model has no spatial input)</p>"
    sizes = [max(r.rf.size) for r in leaves if r.rf is not None]
    width, height, pad = 720, 260, 40
    top = max(sizes) or 1
    step = (width - 2 * pad) / max(len(sizes) - 1, 1)
    points = " ".join(f"{pad + i * step:.1f},{height - pad - (height - 2 * pad) * s / top:.1f}"
                      for i, s in enumerate(sizes))
    dots = "".join(f'<circle cx="{pad + i * step:.1f}" cy="{height - pad - (height - 2 * pad) * s / top:.1f}" r="2">'
                   f'<title>{html.escape(r.name)}: {s:g}</title></circle>' for i, (r, s) in enumerate(zip(leaves, sizes)))
    return (f'<svg width="{width}" height="{height}" font-family="sans-serif" '
            f'font-size="12"><line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="black"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="black"/>'
            f'<text x="{pad}" y="{pad - 8}">receptive field size (pixels), max {top:g}</text>'
            f'<text x="{width - pad - 150}" y="{height - 10}">layers in execution order</text>'
            f'<polyline points="{points}" fill="none" stroke="#4c72b0" stroke-width="1.5"/>{dots}</svg>')


_HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; white-space: pre; }}
th {{ background: #eee; cursor: pointer; position: sticky; top: 0; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.note {{ color: #555; font-size: 12px; max-width: 60em; }}
</style></head><body>
<h1>{heading}</h1>
<ul>{totals}</ul>
{unknown}
<h2>MACs and parameters per stage</h2>
{stage_chart}
<h2>Receptive field growth</h2>
{rf_chart}
<h2>Layers (click a column to sort)</h2>
<table id="layers"><thead><tr>{header}</tr></thead><tbody>
{rows}
</tbody></table>
<p class="note">{conventions}</p>
<script>
let sortState = [-1, 1];
function sortBy(col) {{
  const body = document.querySelector('#layers tbody');
  const rows = Array.from(body.rows);
  sortState = [col, sortState[0] === col ? -sortState[1] : 1];
  const dir = sortState[1];
  rows.sort((a, b) => {{
    const x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
    return dir * c;
  }});
  rows.forEach(r => body.appendChild(r));
}}
</script>
</body></html>
"""
