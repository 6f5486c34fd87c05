"""Shared by the benchmark scripts: replace one ``## Section`` of BENCHMARKS.md, atomically."""

from __future__ import annotations

import os
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def write_section(section: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section whose heading line is ``section``, leaving the others alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # a private temp file, then one rename
    tmp.write_text(new)
    os.replace(tmp, path)


def append_row(section: str, preamble: str, header: str, row: str, path: Path = BENCHMARKS_MD) -> None:
    """Add ``row`` as the last line of the table in ``section``; a missing section is made from ``preamble``
    (text above the table) and ``header`` (the table's heading and separator lines). Earlier rows stay as they are."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    if start is None:
        new = old.rstrip("\n") + f"\n\n{section}\n\n{preamble.rstrip()}\n\n{header.rstrip()}\n{row}\n"
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        table = [i for i in range(start, end) if lines[i].startswith("|")]
        at = table[-1] + 1 if table else end
        if not table:  # a section without its table yet: start one
            row = f"\n{header.rstrip()}\n{row}"
        lines.insert(at, row + "\n")
        new = "".join(lines)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def publish_row(section: str, preamble: str, header: str, row: str, dest: Path | None) -> None:
    """Print the table's heading line and ``row``; add the row to ``dest``'s table too, unless ``dest`` is None."""
    print(header.splitlines()[0])
    print(row)
    if dest is not None:
        append_row(section, preamble, header, row, dest)
        print(f"appended to {dest}")
