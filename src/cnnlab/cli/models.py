"""``cnnlab models`` (the zoo as a table or JSON) and ``cnnlab card`` (one model's full card)."""

from __future__ import annotations

import argparse
import json

from cnnlab.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` (alias ``list``) and ``card`` subcommands."""
    models = subparsers.add_parser(
        "models", aliases=["list"], help="the model zoo: name, family, input, params, MACs, count source",
        description="List the zoo from the model cards (nothing is built). PATTERN is shell-style (vgg*, "
                    "resnet?0); a PATTERN without wildcards matches names containing it. MACs are conv + linear "
                    "multiply-adds at the input size, batch 1 (FLOPs = 2 x MACs).")
    models.add_argument("pattern", nargs="?", default=None, metavar="PATTERN", help="filter names, e.g. 'vgg*'")
    models.add_argument("--json", action="store_true", help="print a JSON list of the full cards")
    models.set_defaults(handler=run_models)

    card = subparsers.add_parser("card", help="the full card of one model: paper, counts, differences",
                                 description="Print everything the zoo records about NAME.")
    card.add_argument("name", metavar="NAME", help="zoo model name (see `cnnlab models`)")
    card.add_argument("--json", action="store_true", help="print the card as JSON")
    card.set_defaults(handler=run_card)


def human(count: int | None, unit: str) -> str:
    """61100840 -> '61.1M' (params), 714188480 -> '0.71G' (MACs, always in G); None -> '-'."""
    if count is None:
        return "-"
    if unit == "G":
        return f"{count / 1e9:.2f}G"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return str(count)


def _select(pattern: str | None) -> list[str]:
    from cnnlab.models import list_models

    if pattern is not None and not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    names = list_models(pattern)
    if not names:
        raise CLIError(f"no model matches {pattern!r}; run `cnnlab models` to see all {len(list_models())}")
    return names


def run_models(args: argparse.Namespace) -> int:
    from cnnlab.models import model_card

    cards = [model_card(name) for name in _select(args.pattern)]
    if args.json:
        print(json.dumps([c.to_dict() for c in cards], indent=2))
        return 0
    from cnnlab._text import table, terminal_width

    header = ("name", "family", "input", "params", "MACs", "counts from")
    rows = [(c.name, c.family, "x".join(map(str, c.input_size)), human(c.reference.params, "M"),
             human(c.reference.macs, "G"), c.reference.source) for c in cards]
    # right-align the counts so the decimal points line up; a narrow terminal shortens "counts from" first
    lines, _ = table(header, rows, [i in (3, 4) for i in range(len(header))], terminal_width(), drop_order=(),
                     shrink_order=(5, 1), cut_end=(5,))
    del lines[1]  # no rule under the header, as before
    print("\n".join(lines))
    return 0


def _counts_line(counts) -> str:
    macs = "-" if counts.macs is None else f"{counts.macs:,}"
    options = f" with {dict(counts.options)}" if counts.options else ""
    note = f"; {counts.note}" if counts.note else ""
    return f"{counts.params:,} params, {macs} MACs{options} ({counts.source}{note})"


def run_card(args: argparse.Namespace) -> int:
    from cnnlab.models import model_card

    card = model_card(args.name)
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
        return 0
    fields = [
        ("name", card.name), ("family", card.family), ("paper", card.paper),
        ("input size", "x".join(map(str, card.input_size))), ("min input size", card.min_input_size),
        ("classes", card.num_classes), ("reference", _counts_line(card.reference)),
        ("follows", card.follows), ("differences", card.differences), ("tags", ", ".join(card.tags)),
        ("weights from", ", ".join(f"{source} {name}" for source, name in card.to_dict()["converts_from"].items())),
    ]
    from cnnlab._text import terminal_width, wrap

    fields += [("variants" if i == 0 else "", f"{variant}: {_counts_line(counts)}")
               for i, (variant, counts) in enumerate(card.variants.items())]
    width = max(len(k) for k, _ in fields)
    columns = terminal_width()  # long values wrap under themselves in a terminal; a pipe gets one line each
    for key, value in fields:
        if value not in ("", None):
            print("\n".join(wrap(f"{key.ljust(width)}  {value}", columns, indent=width + 2)))
    return 0
