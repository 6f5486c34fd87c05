"""``cnnlab plot``: training curves of one or more runs on one axis, read from their metrics.jsonl.

A run directory's metrics.jsonl holds one record per epoch (``{"kind": "epoch", "epoch", "train_loss",
"train_acc", "test_loss", "test_acc", "test_top5", "lr", ...}``) and one per logged step (``{"kind": "step",
"step", "loss", "acc", "lr", ...}``). Epoch records are plotted by default; ``--per-step`` plots the step
records of the training metrics and the learning rate. matplotlib is imported by the handler only
(``matplotlib.figure.Figure``, no pyplot and no global backend), so the rest of the command line starts without it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab._io import read_jsonl
from cnnlab.cli import CLIError

# metric -> (axis label, key in epoch records, key in step records or None, shown in %)
METRICS: dict[str, tuple[str, str, str | None, bool]] = {
    "test_acc": ("test accuracy (%)", "test_acc", None, True),
    "test_top5": ("test top-5 accuracy (%)", "test_top5", None, True),  # data of 5 or more classes
    "train_acc": ("training accuracy (%)", "train_acc", "acc", True),
    "test_loss": ("test loss", "test_loss", None, False),
    "train_loss": ("training loss", "train_loss", "loss", False),
    "lr": ("learning rate", "lr", "lr", False),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plot`` subcommand."""
    p = subparsers.add_parser(
        "plot", help="training curves of one or more runs on one axis (PNG, SVG or PDF)",
        description="Overlay a metric of one or more run directories (the --out of cnnlab train), one line per "
                    "run, labelled with the run's name and its best or last value. The file type follows the "
                    "extension of --out (.png, .svg, .pdf).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories holding a metrics.jsonl")
    p.add_argument("--metric", choices=tuple(METRICS), default="test_acc", help="what to plot (default test_acc)")
    p.add_argument("--per-step", action="store_true",
                   help="plot the logged steps instead of the epochs (train_loss, train_acc and lr only)")
    p.add_argument("--log-y", action="store_true", help="logarithmic y axis (useful for lr and losses)")
    p.add_argument("--title", default=None, help="figure title (default: the metric)")
    p.add_argument("--out", default="curves.png", metavar="FILE", help="image to write (default curves.png)")
    p.set_defaults(handler=run_plot)


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """The records of ``run/metrics.jsonl`` (a half-written last line, as a killed run leaves, is skipped)."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        what = "does not exist" if not Path(run).exists() else "has no metrics.jsonl"
        raise CLIError(f"{run} {what}; give a run directory (the --out of cnnlab train)")
    return read_jsonl(path)


def series(records: Sequence[dict[str, Any]], metric: str, per_step: bool = False) -> tuple[list[float], list[float]]:
    """(x, y) of ``metric``: per epoch, or per logged step; a step logged twice (a resumed run) keeps its last value."""
    _, epoch_key, step_key, percent = METRICS[metric]
    if per_step and step_key is None:
        raise CLIError(f"--per-step has no {metric}: the test set is evaluated once per epoch; plot it per epoch, "
                       f"or choose train_loss, train_acc or lr")
    kind, x_key, key = ("step", "step", step_key) if per_step else ("epoch", "epoch", epoch_key)
    points: dict[float, float] = {}
    for r in records:
        if r.get("kind") == kind and isinstance(r.get(key), (int, float)) and isinstance(r.get(x_key), (int, float)):
            points[r[x_key]] = r[key] * (100 if percent else 1)
    xs = sorted(points)
    return xs, [points[x] for x in xs]


def run_labels(runs: Sequence[str]) -> list[str]:
    """Each run's directory name; the path as given where two runs share a name."""
    names = [Path(r).resolve().name or str(r) for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def curves_figure(runs: Sequence[str], metric: str = "test_acc", per_step: bool = False, log_y: bool = False,
                  title: str | None = None) -> Any:  # noqa: ANN401 (matplotlib.figure.Figure, imported lazily)
    """A matplotlib Figure with ``metric`` of every run on one axis, labelled axes and a legend of run names."""
    from matplotlib.figure import Figure

    label, _, _, percent = METRICS[metric]
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    missing = []
    for run, name in zip(runs, run_labels(runs)):
        xs, ys = series(read_metrics(run), metric, per_step)
        if not ys:
            missing.append(str(run))
            continue
        if percent:  # the accuracies
            name += f" (best {max(ys):.2f}%)"
        elif metric.endswith("loss"):
            name += f" (last {ys[-1]:.4g})"
        ax.plot(xs, ys, marker="o" if len(xs) <= 30 else None, markersize=3, linewidth=1.5, label=name)
    if missing:
        where = "logged steps" if per_step else "epoch records"
        raise CLIError(f"no {metric} in the {where} of {', '.join(missing)}"
                       + ("; the test set is evaluated every --set eval_every epochs, and a run stopped before its "
                          "first epoch has none" if not per_step else "")
                       + ("; top-5 needs 5 or more classes (and a run logged before cnnlab recorded it)"
                          if metric == "test_top5" else ""))
    ax.set_xlabel("step" if per_step else "epoch")
    ax.set_ylabel(label)
    if log_y:
        ax.set_yscale("log")
    if not per_step:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.set_title(title if title is not None else f"{label} per {'step' if per_step else 'epoch'}")
    ax.legend(loc="best", fontsize="small")
    return fig


def run_plot(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab plot``."""
    from cnnlab._io import atomic_path

    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise CLIError(f"--out {out}: give a .png, .svg or .pdf file name")
    if not out.parent.exists():
        raise CLIError(f"directory {out.parent} does not exist; create it or choose another --out")
    fig = curves_figure(args.runs, args.metric, args.per_step, args.log_y, args.title)
    with atomic_path(out) as tmp:  # a viewer never opens half an image
        # no version or date stamp: the same numbers give the same bytes
        metadata = {"png": {"Software": None}, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[fmt]
        fig.savefig(tmp, format=fmt, dpi=120, metadata=metadata)
    print(f"wrote {out}", file=sys.stderr)
    return 0
