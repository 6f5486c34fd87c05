"""The experiment plots as PNG bytes: error curves of every run on one axis, and the exact cost of every arm.

matplotlib is imported inside the functions, never at module level, so ``import cnnlab`` and every other
layer stay free of it. Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no global backend):
saving one to PNG uses the Agg renderer without touching process-wide state.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from cnnlab.experiments.core import RunRecord

# the tab10 palette, fixed here so that an arm has the same colour in every plot of a report
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
DPI = 110


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    """One colour per arm, in the order given (cycling after ten)."""
    return {arm: COLOURS[i % len(COLOURS)] for i, arm in enumerate(arms)}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    # no "Software" stamp: the same numbers give the same bytes under any matplotlib version
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def curves_png(runs: Sequence[RunRecord], titles: Mapping[str, str], *, title: str = "",
               paper_test_error: Mapping[str, float] | None = None) -> bytes:
    """Training error (dashed) and test error (solid) in % per epoch, every run on one axis, a colour per arm.

    ``titles`` maps arm names to legend labels, in plot order. ``paper_test_error`` (arm -> error in %) draws the
    paper's final test error of an arm as a dotted horizontal line in its colour.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    colours = arm_colours(list(titles))
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.add_subplot()
    drawn: list[str] = []
    for run in runs:
        colour = colours.get(run.arm, "black")
        epochs = [e["epoch"] for e in run.epochs]
        for key, style in (("train_acc", "--"), ("test_acc", "-")):
            points = [(x, 100 * (1 - e[key])) for x, e in zip(epochs, run.epochs) if e.get(key) is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, style, color=colour, marker="o", markersize=3, linewidth=1.6, alpha=0.9)
        if run.epochs and run.arm not in drawn:
            drawn.append(run.arm)
    for arm, error in (paper_test_error or {}).items():
        if arm in drawn:
            ax.axhline(error, color=colours.get(arm, "black"), linestyle=":", linewidth=1.4)
    handles = [Line2D([], [], color=colours.get(arm, "black"), linewidth=3, label=titles.get(arm, arm))
               for arm in drawn]
    handles += [Line2D([], [], color="0.3", linestyle="--", label="training error"),
                Line2D([], [], color="0.3", linestyle="-", label="test error")]
    if paper_test_error and any(arm in drawn for arm in paper_test_error):
        handles.append(Line2D([], [], color="0.3", linestyle=":", label="paper's final test error"))
    if not drawn:
        ax.text(0.5, 0.5, "no epoch finished: nothing to draw", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_ylim(bottom=0, top=min(100.0, ax.get_ylim()[1] + 2))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    seen = [e["epoch"] for run in runs for e in run.epochs]
    if seen:  # half an epoch of margin: a one-epoch run is a readable point, not a zoomed-in axis
        ax.set_xlim(min(seen) - 0.5, max(seen) + 0.5)
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "training (dashed) and test (solid) error per epoch")
    # outside the axis, so it never hides a curve
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")
    return _png(fig)


def costs_png(costs: Mapping[str, Mapping[str, Any]], titles: Mapping[str, str], *,
              input_size: Sequence[int] = (3, 32, 32), title: str = "") -> bytes:
    """Two panels of horizontal bars per arm: parameters and MACs (millions), each labelled with its exact count.

    Where an arm trains more parameters than it keeps (auxiliary heads), a hatched extension shows the difference.
    """
    from matplotlib.figure import Figure

    arms = [arm for arm in titles if arm in costs]
    colours = arm_colours(list(titles))
    fig = Figure(figsize=(10, 1.4 + 0.45 * max(len(arms), 2)), layout="constrained")
    fig.get_layout_engine().set(wspace=0.06)
    panels = fig.subplots(1, 2, sharey=True)
    size = "x".join(str(s) for s in input_size)
    y = list(range(len(arms)))[::-1]  # the first arm on top
    for ax, key, label in ((panels[0], "params", "parameters (millions)"),
                           (panels[1], "macs", f"MACs at {size} (millions)")):
        counts = [int(costs[arm][key]) for arm in arms]
        # parameters only the auxiliary heads have (trained, then dropped): a hatched extension of the bar
        aux = [max(0, int(costs[arm].get("trained_params", c)) - c) if key == "params" else 0
               for arm, c in zip(arms, counts)]
        bars = ax.barh(y, [c / 1e6 for c in counts], color=[colours[arm] for arm in arms], height=0.6)
        ax.bar_label(bars, labels=["" if a else f"{c:,}" for c, a in zip(counts, aux)], padding=3,
                     fontsize="small")
        if any(aux):
            with_aux = [(yi, c, a) for yi, c, a in zip(y, counts, aux) if a]
            extra = ax.barh([yi for yi, _, _ in with_aux], [a / 1e6 for _, _, a in with_aux],
                            left=[c / 1e6 for _, c, _ in with_aux], height=0.6, fill=False, hatch="//",
                            edgecolor="0.35", label="auxiliary heads (trained only)")
            ax.bar_label(extra, labels=[f"{c:,} + {a:,} aux" for _, c, a in with_aux], padding=3,
                         fontsize="small")
            ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small", frameon=False)
        ax.set_xlabel(label)
        ax.set_xlim(0, (1.7 if any(aux) else 1.3) * max([(c + a) / 1e6 for c, a in zip(counts, aux)] + [1e-9]))
        ax.grid(True, axis="x", alpha=0.3)
    panels[0].set_yticks(y, [titles[arm] for arm in arms])
    fig.suptitle(title or "exact cost per arm (cnnlab.analysis)")
    return _png(fig)
