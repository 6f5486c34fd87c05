"""The architecture diagram of a ``CostReport``: inline SVG, the network top to bottom, one item per stage."""

from __future__ import annotations

import html
from typing import Any

from cnnlab.analysis.report import CostReport, LayerCost, _pct, _shape

_BOX_W, _ROW_H, _GAP, _FRAME_W, _DIAGRAM_W = 380, 30, 14, 600, 780


def child_rows(report: CostReport) -> dict[str, list[LayerCost]]:
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


def diagram(report: CostReport) -> str:
    """Inline SVG: the network top to bottom, one item per stage; Inception-style branches side by side, skip
    connections drawn, runs of the same block collapsed into one box (``18 x BasicBlock``)."""
    kids = child_rows(report)
    # a holder never called itself whose children run (a ModuleDict of auxiliary heads in train mode: its row
    # has their calls but no input) feeds on the trunk from the side: drawn apart, after the output
    side = [r for r in report.layers if r.depth == 1 and r.calls and r.input_shape is None and not r.is_leaf]
    stages = [r for r in report.layers if r.depth == 1 and r.calls and r not in side]
    if not stages:
        return "<p>(no stages)</p>"
    e = html.escape
    cx = _DIAGRAM_W / 2
    y = 10
    parts: list[str] = []

    def arrow(y0: float, y1: float, x0: float = cx, x1: float = cx) -> None:
        parts.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1 - 2:.1f}" stroke="#666" '
                     f'marker-end="url(#arrow)"/>')

    def box(x: float, top: float, w: float, title: str, sub: str, fill: str = "#eef2f8", tip: str = "",
            stroke: str = "#8a9bb8", dash: str = "") -> None:
        parts.append(f'<g><title>{e(tip or title)}</title><rect x="{x:.1f}" y="{top:.1f}" width="{w:.1f}" '
                     f'height="{_ROW_H}" rx="4" fill="{fill}" stroke="{stroke}"'
                     + (f' stroke-dasharray="{dash}"' if dash else "") + '/>'
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
        box(cx - _BOX_W / 2, y, _BOX_W, f"{r.name}: {len(heads)} x {heads[0].type}",
            f"side outputs from the trunk: {inputs}", fill="#fff8ee", stroke="#dd8452", dash="4 3",
            tip=f"{r.name}: {', '.join(c.name for c in heads)}")
        y += _ROW_H + 10
    skipped = [r.name for r in report.layers if r.depth == 1 and not r.calls]
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
