"""Plain-text tables and paragraphs that fit a terminal: shared by the reports and the command line.

No dependency: a table is lists of strings, fitted to a width by leaving out the least important columns
first (the caller names them, and a footer says which went) and then shortening the widest cells with "~"
in the middle, so both ends of a dotted layer name stay readable. ``width=None`` never shortens (a file, a
pipe, a notebook).
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Iterable, Sequence

ELLIPSIS = "~"  # ASCII: every terminal and log file shows it
MIN_CELL = 8


def terminal_width() -> int | None:
    """Columns of the terminal stdout is on (``COLUMNS`` wins); None when stdout is not a terminal."""
    if os.environ.get("COLUMNS", "").isdigit():
        return max(int(os.environ["COLUMNS"]), 20)
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # a replaced or closed stdout
        return None
    return max(shutil.get_terminal_size().columns, 20)


def shorten(text: str, width: int, end: bool = False) -> str:
    """``text`` cut to ``width`` characters with ``~`` in the middle (``layer3.~.conv2``) or, with ``end``, at the
    end (prose); short text unchanged."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    if end:
        return text[:width - 1] + ELLIPSIS
    indent = len(text) - len(text.lstrip(" "))  # keep a tree's indentation: it shows the depth
    body, room = text[indent:], width - indent
    if room < 4:
        return text[:width]
    head = (room - 1) // 2
    return text[:indent] + body[:head] + ELLIPSIS + body[len(body) - (room - 1 - head):]


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool], width: int | None = None,
          drop_order: Sequence[int] = (), shrink_order: Sequence[int] = (), sep: str = "  ",
          cut_end: Sequence[int] = ()) -> tuple[list[str], list[str]]:
    """Aligned lines (header, rule, rows) and the names of the columns left out to fit ``width``.

    ``right[i]``: right-align column i (numbers). ``drop_order``: columns to leave out, first to last, while the
    table is too wide. ``shrink_order``: columns whose cells may then be shortened (to ``MIN_CELL`` at least), in
    the middle, or at the end for the columns in ``cut_end``.
    """
    keep = list(range(len(header)))
    widths = [max([len(header[i])] + [len(r[i]) for r in rows]) for i in range(len(header))]

    def total() -> int:
        return sum(widths[i] for i in keep) + len(sep) * (len(keep) - 1)

    dropped: list[str] = []
    if width is not None:
        for i in drop_order:
            if total() <= width:
                break
            keep.remove(i)
            dropped.append(header[i])
        for i in shrink_order:
            excess = total() - width
            if excess <= 0:
                break
            if i in keep:
                widths[i] = max(widths[i] - excess, min(widths[i], max(MIN_CELL, len(header[i]))))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i in keep:
            cell = shorten(cells[i], widths[i], end=i in cut_end)
            out.append(cell.rjust(widths[i]) if right[i] else cell.ljust(widths[i]))
        return sep.join(out).rstrip()

    lines = [line(header), sep.join("-" * widths[i] for i in keep)]
    lines.extend(line(r) for r in rows)
    return lines, dropped


def md_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """A Markdown table as lines: header, alignment rule (``---:`` where ``right``), rows; cells as given."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if r else "---" for r in right) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]


def wrap(text: str, width: int | None, indent: int = 0) -> list[str]:
    """``text`` as lines of at most ``width`` (a hanging indent of ``indent`` after the first); None: one line."""
    if width is None or len(text) <= width:
        return [text]
    return textwrap.wrap(text, width=max(width, indent + 20), subsequent_indent=" " * indent,
                         break_long_words=True, break_on_hyphens=False) or [text]
