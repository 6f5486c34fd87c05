"""``cnnlab summary``, ``cnnlab compare``, ``cnnlab lint``: the cost analyser on the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cnnlab._io import atomic_write
from cnnlab._text import md_table, terminal_width
from cnnlab._text import table as fit_table
from cnnlab.cli import parse_size

if TYPE_CHECKING:
    from torch import nn

# dtype names; torch is imported only when a command runs, so that `cnnlab --help` stays fast
_DTYPES = ("bfloat16", "float16", "float32", "float64")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``summary``, ``compare`` and ``lint`` subcommands."""
    summary = subparsers.add_parser(
        "summary", help="per-layer parameters, MACs, memory and receptive field of a model",
        description="Analyse a zoo model (or MODULE.PATH:CALLABLE returning an nn.Module) on the meta device: "
                    "no weights are allocated. Counting conventions: docs/analysis.md, 'How it counts'.")
    _common(summary)
    summary.add_argument("--depth", type=_depth, default=None, metavar="N|all",
                         help="show rows down to depth N (0: totals only, 1: stages, 2: blocks; all: every row). "
                              "Default: every row up to 250, else the deepest depth that fits (a 1000-layer "
                              "network shows its stages); json and csv always hold every row")
    summary.add_argument("--format", choices=("table", "json", "csv", "md", "html"), default="table")
    summary.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE instead of stdout")
    summary.set_defaults(handler=run_summary)

    compare = subparsers.add_parser(
        "compare", help="side-by-side totals of several models, with ratios to the first",
        description="Totals of each model (each at its own default input unless --input is given) and their "
                    "ratios to the first model.")
    compare.add_argument("models", nargs="+", metavar="MODEL", help="zoo names or MODULE.PATH:CALLABLE")
    compare.add_argument("--input", default=None, metavar="CxHxW", help="one input size for every model")
    compare.add_argument("--train", action="store_true", help="analyse in training mode (aux heads counted)")
    compare.add_argument("--format", choices=("table", "json", "md", "html"), default="table",
                         help="html: one self-contained page in the look of `summary --format html`")
    compare.add_argument("-o", "--output", default=None, metavar="FILE", help="write to FILE instead of stdout")
    compare.set_defaults(handler=run_compare)

    lint = subparsers.add_parser(
        "lint", help="check a model against the design principles of 'Rethinking the Inception Architecture'",
        description="Representational bottlenecks, factorisable large kernels (5x5 -> two 3x3 saves 28%, n x n "
                    "-> 1 x n + n x 1 saves 1 - 2/n), fully connected layers that dominate the parameters (and "
                    "what global average pooling saves), Inception branches without a 1x1 reduction. Exit "
                    "status: 0 when there is no finding, 1 when there are findings (so CI can gate on it), 2 on "
                    "an error.")
    _common(lint)
    lint.add_argument("--format", choices=("table", "json"), default="table")
    lint.set_defaults(handler=run_lint)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="zoo model name (see `cnnlab list`) or MODULE.PATH:CALLABLE")
    parser.add_argument("--input", default=None, metavar="CxHxW",
                        help="input size without the batch (default: the card's, else 3x224x224)")
    parser.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    parser.add_argument("--dtype", choices=_DTYPES, default="float32", help="activation/parameter dtype")
    parser.add_argument("--train", action="store_true", help="analyse in training mode (aux heads counted)")


def load_model(spec: str) -> nn.Module | str:
    """A zoo name stays a name (built on meta by analyze); ``pkg.module:callable`` is imported and called."""
    import torch
    from torch import nn

    if ":" not in spec:
        from cnnlab.models import model_card

        model_card(spec)  # an unknown name raises UnknownModelError with the closest names
        return spec
    from cnnlab.models import create_model, import_object

    target = import_object(spec)
    if isinstance(target, nn.Module):  # an instance: analyse it as it is
        return target
    try:
        with torch.device("meta"):  # build without allocating weights, as analyze does for zoo names
            return create_model(spec)
    except (NotImplementedError, RuntimeError):
        return create_model(spec)  # an initialiser that needs real data: build on CPU; analyze copies it to meta


def _analyze(spec: str, args: argparse.Namespace):  # noqa: ANN202 (CostReport, imported lazily)
    import torch

    from cnnlab.analysis import analyze

    return analyze(load_model(spec), parse_size(args.input), batch_size=getattr(args, "batch", 1),
                   dtype=getattr(torch, getattr(args, "dtype", "float32")), training=True if args.train else None)


def _emit(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    path = Path(output)
    if path.parent and not path.parent.exists():
        raise FileNotFoundError(f"directory {path.parent} does not exist; create it or choose another -o path")
    atomic_write(path, text)  # a reader never sees half a report
    print(f"wrote {path}", file=sys.stderr)


def _depth(text: str) -> int | str:
    if text == "all":
        return text
    try:
        depth = int(text)
    except ValueError:
        depth = -1
    if depth < 0:
        raise argparse.ArgumentTypeError(f"give a depth >= 0 or 'all', not {text!r}")
    return depth


def run_summary(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab summary``."""
    report = _analyze(args.model, args)
    depth = args.depth
    if depth is None:  # a readable default for the formats people read; json and csv are data: every row
        depth = report.default_depth() if args.format in ("table", "md", "html") else None
    elif depth == "all":
        depth = None
    if args.format == "table":
        # fit the terminal when the table goes to one; a file or a pipe gets every column at full width
        text = report.to_table(depth, width=terminal_width() if args.output is None else None)
    else:
        text = report.render(args.format, depth)
    _emit(text, args.output)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab compare``."""
    reports = [_analyze(spec, args) for spec in args.models]
    base = reports[0]
    base_run = base.params - base.unused_params
    rows = []
    for spec, r in zip(args.models, reports):
        rf = r.layers[0].rf
        run = r.params - r.unused_params
        rows.append({
            "model": spec, "input_size": list(r.input_size), "params": r.params, "params_run": run,
            "macs": r.macs, "other_ops": r.other_ops, "activation_bytes": r.activation_bytes,
            # parameters of what ran: auxiliary heads that are off at inference are not compared
            "params_ratio": run / base_run if base_run else None,
            "macs_ratio": r.macs / base.macs if base.macs else None,
            "rf_size": max(rf.size) if rf is not None else None,
        })
    if args.format == "json":
        _emit(json.dumps({"baseline": args.models[0], "models": rows}, indent=1), args.output)
        return 0
    header = ["model", "input", "params", "params run", "x params", "MACs", "x MACs", "other ops", "activations"]
    table = [[row["model"], "x".join(map(str, row["input_size"])), f"{row['params']:,}", f"{row['params_run']:,}",
              _ratio(row["params_ratio"]),
              f"{row['macs']:,}", _ratio(row["macs_ratio"]), f"{row['other_ops']:,}",
              f"{row['activation_bytes'] / 2**20:.1f} MiB"] for row in rows]
    notes = [f"{row['model']} vs {args.models[0]}: {_sentence(row['params_ratio'], 'parameters')}, "
             f"{_sentence(row['macs_ratio'], 'multiply-adds')}" for row in rows[1:]]
    if any(row["params_run"] != row["params"] for row in rows):
        notes.append("(params run: parameters of the modules that ran; auxiliary heads are off in eval mode)")
    if args.format == "html":
        from cnnlab.analysis.report_html import comparison_page

        _emit(comparison_page(header, table, rows, notes), args.output)
        return 0
    right = [i >= 2 for i in range(len(header))]
    if args.format == "md":
        lines = md_table(header, table, right)
    else:
        width = terminal_width() if args.output is None else None
        body, dropped = fit_table(header, table, right, width, drop_order=(7, 8, 3, 1), shrink_order=(0,))
        lines = [body[0], *body[2:]]  # no rule under the header, as before
        if dropped:
            lines.append(f"(left out to fit {width} columns: {', '.join(dropped)})")
    _emit("\n".join([*lines, "", *notes]), args.output)
    return 0


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _sentence(ratio: float | None, what: str) -> str:
    if ratio is None or ratio == 0:
        return f"{what}: no baseline"
    if ratio >= 1:
        return f"{ratio:.1f}x more {what}"
    return f"{1 / ratio:.1f}x fewer {what}"


def run_lint(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab lint``: exit 0 without findings, 1 with findings (for CI), 2 on errors."""
    from cnnlab.analysis.principles import lint

    report = _analyze(args.model, args)
    findings = lint(report)
    if args.format == "json":
        _emit(json.dumps({"model": report.model, "params": report.params, "macs": report.macs,
                          "findings": [f.to_dict() for f in findings]}, indent=1), None)
        return 1 if findings else 0
    lines = [f"{report.model}: {report.params:,} params, {report.macs:,} MACs at "
             f"{'x'.join(map(str, report.input_size))}"]
    if not findings:
        lines.append("no findings: no bottleneck, no kernel >= 5x5, no FC-heavy head, no unreduced branch")
    for rule in ("bottleneck", "factorize", "fc_heavy", "reduce_1x1"):
        group = [f for f in findings if f.rule == rule]
        if not group:
            continue
        macs = sum(f.saving_macs for f in group)
        params = sum(f.saving_params for f in group)
        lines.append("")
        lines.append(f"[{rule}] {len(group)} finding(s)" + (f"; up to {macs:,} MACs" if macs else "")
                     + (f" and {params:,} params" if params else "") + (" saved" if macs or params else ""))
        lines.extend(f"  - {f.message}" for f in group)
    _emit("\n".join(lines), None)
    return 1 if findings else 0  # like ruff or flake8: a CI step fails while the model has findings
