"""The HTML renderers of a ``CostReport``: one self-contained page (inline SVG and CSS, one small script,
nothing fetched from elsewhere) and the fragment Jupyter shows; the same look for ``cnnlab compare``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

from cnnlab.analysis.diagram import child_rows, diagram
from cnnlab.analysis.ops import CONVENTIONS
from cnnlab.analysis.report import (
    _COLUMNS,
    CostReport,
    LayerCost,
    _cells,
    _pct,
    _rf_text,
    _shape,
    _si,
    _sort_keys,
)

_MACS_COLOUR, _PARAMS_COLOUR = "#4c72b0", "#dd8452"
_NUM_CELL = ' class="num"'


def page(report: CostReport, depth: int | None = None) -> str:
    """The report as one HTML page (``CostReport.to_html``)."""
    return _HTML_TEMPLATE.format(title=html.escape(f"cnnlab: {report.model}"), style=_STYLE,
                                 body=_body(report, depth), script=_SCRIPT)


def fragment(report: CostReport) -> str:
    """What Jupyter shows: totals, charts and the collapsible module tree (no script needed)."""
    return f'<div class="cnnlab-report">{_STYLE}{_body(report, 0)}</div>'


def _body(report: CostReport, table_depth: int | None) -> str:
    """The content: totals, diagram, both charts, module tree, layer table (to ``table_depth``; 0: none)."""
    stages = [r for r in report.layers if r.depth == 1]
    leaves = [r for r in report.layers if r.is_leaf and r.rf is not None and r.calls]
    unknown = "".join(f"<li>{html.escape(u['op'])} in {html.escape(u['layer'] or '(model)')} "
                      f"({u['count']} call(s)): unknown cost</li>" for u in report.unknown_ops)
    parts = [
        f"<h1>{html.escape(report.model)} at {'x'.join(map(str, report.input_size))}, batch {report.batch_size} "
        f"({'train' if report.training else 'eval'} mode)</h1>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in report.totals_lines()) + "</ul>",
        f"<h2>Ops with unknown cost</h2><ul>{unknown}</ul>" if unknown else "",
        "<h2>Architecture</h2>",
        '<p class="note">One box per stage, in execution order; branches that run side by side and are '
        'concatenated are drawn side by side; dashed red lines are shortcuts added to a block\'s output. '
        'Hover over a box for its details.</p>',
        diagram(report),
        "<h2>Where the cost is: each stage's share of the model</h2>",
        _stage_chart(stages, report.macs, report.params),
        "<h2>Receptive field after each layer</h2>",
        _rf_chart(leaves, report.input_size),
        "<h2>Module tree</h2>",
        '<p class="note">Click a module to open it. Shares are of the whole model; a module\'s numbers include '
        'everything inside it.</p>',
        _tree(report),
    ]
    if table_depth != 0:
        rows = report.at_depth(table_depth)
        hidden = len(report.at_depth(None)) - len(rows)
        parts += [
            "<h2>Layers</h2>",
            '<p class="note">Click a column to sort; a module\'s children stay under it. Bars: share of the '
            'model\'s MACs and parameters, on one scale (a full bar is 100%).'
            + (f" {hidden:,} deeper rows are not shown (depth {table_depth})." if hidden else "") + "</p>",
            _layer_table(rows, report.macs, report.params),
        ]
    parts.append(f'<p class="note">{html.escape(CONVENTIONS)}</p>')
    return "\n".join(p for p in parts if p)


def _stage_chart(stages: list[LayerCost], total_macs: int, total_params: int, what: str = "stage",
                 whole: str = "the model", legend: str = "in all") -> str:
    """Inline SVG: per stage (``what``), its MACs and its parameters as % of ``whole``, both on one 0-100% axis."""
    if not stages:
        return "<p>(no stages)</p>"
    row_h, label_w, bar_w, top = 34, 170, 440, 44
    height = top + row_h * len(stages) + 26
    e = html.escape
    parts = [f'<svg class="chart" role="img" aria-label="MACs and parameters per {what}" '
             f'width="{label_w + bar_w + 130}" height="{height}" font-family="sans-serif" font-size="12">',
             f'<rect x="{label_w}" y="0" width="12" height="10" fill="{_MACS_COLOUR}"/>'
             f'<text x="{label_w + 16}" y="10">MACs ({_si(total_macs)} {legend})</text>',
             f'<rect x="{label_w + 170}" y="0" width="12" height="10" fill="{_PARAMS_COLOUR}"/>'
             f'<text x="{label_w + 186}" y="10">parameters ({_si(total_params)} {legend})</text>']
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
                     f'<title>{e(s.name)}: {s.macs:,} MACs, {pm:.1f}% of {whole}</title></rect>')
        parts.append(f'<text x="{label_w + wm + 4:.1f}" y="{y + 10}">{pm:.1f}% ({_si(s.macs)})</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 14}" width="{wp:.1f}" height="12" fill="{_PARAMS_COLOUR}">'
                     f'<title>{e(s.name)}: {s.params:,} parameters, {pp:.1f}% of {whole}</title></rect>')
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
                     f'stroke="black"/><text x="{px(i):.1f}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle">{i + 1}</text>')
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
    kids = child_rows(report)
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
        for r in kids.get(parent, []):
            label = r.name.rpartition(".")[2] if r.depth > 1 else r.name
            if r.name in kids:
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
    return _sortable_table([*_COLUMNS[:5], "MACs share", "params share", *_COLUMNS[5:]], body)


def _sortable_table(header: Sequence[str], rows: list[str]) -> str:
    """A table of ``rows`` (``<tr>`` elements) whose columns sort by a click (``sortBy`` in ``_SCRIPT``)."""
    head = "".join(f'<th onclick="sortBy({i})">{html.escape(h)}</th>' for i, h in enumerate(header))
    return (f'<table id="layers"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(rows)
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


def comparison_page(header: Sequence[str], cells: Sequence[Sequence[str]], rows: Sequence[dict],
                    notes: Sequence[str]) -> str:
    """``cnnlab compare --format html``: the summary's look for several models. ``cells`` are the table's text
    (``header`` its columns), ``rows`` the numbers behind it (``model``, ``params_run``, ``macs`` at least), ``notes``
    the sentences under it. MACs and parameters that ran are drawn as % of the largest model's, on the summary's
    0-100% scale; the table sorts by a click."""
    e = html.escape
    names = [str(r["model"]) for r in rows]
    models = [LayerCost(name, "model", 1, calls=1, params=r["params_run"], macs=r["macs"])
              for name, r in zip(names, rows)]
    chart = _stage_chart(models, max(r["macs"] for r in rows), max(r["params_run"] for r in rows), what="model",
                         whole="the largest model", legend="at most")
    body = []
    for r, row_cells in zip(rows, cells):
        tds = "".join(f'<td{_NUM_CELL if i >= 2 else ""} data-v="{e(c.replace(",", "").split(" ")[0])}">{e(c)}</td>'
                      for i, c in enumerate(row_cells))
        body.append(f'<tr data-name="{e(str(r["model"]))}" data-parent="">{tds}</tr>')
    content = "\n".join([
        f"<h1>{e(' vs '.join(names))}</h1>",
        "<h2>MACs and parameters that ran, as % of the largest model's</h2>", chart,
        "<h2>Totals</h2>", '<p class="note">Click a column to sort. Ratios are to the first model.</p>',
        _sortable_table(header, body),
        "<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>" if notes else "",
        f'<p class="note">{e(CONVENTIONS)}</p>'])
    return _HTML_TEMPLATE.format(title=e(f"cnnlab compare: {', '.join(names)}"), style=_STYLE, body=content,
                                 script=_SCRIPT)
