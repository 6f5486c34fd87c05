"""Shared by the benchmark scripts: replace one ``## Section`` of BENCHMARKS.md, or add a row to its table,
atomically."""

from __future__ import annotations

from pathlib import Path

from cnnlab._io import atomic_write

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def _find(section: str, path: Path) -> tuple[str, list[str], int | None, int]:
    """The file's text, its lines, and where ``section`` starts (None: absent) and ends (the next ``## `` or EOF)."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == section), None)
    end = len(lines) if start is None else next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return old, lines, start, end


def write_section(section: str, text: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace (or append) the section whose heading line is ``section``, leaving the others alone."""
    old, lines, start, end = _find(section, path)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    atomic_write(path, new)


def append_row(section: str, preamble: str, header: str, row: str, path: Path = BENCHMARKS_MD) -> None:
    """Add ``row`` as the last line of the table in ``section``; a missing section is made from ``preamble``
    (text above the table) and ``header`` (the table's heading and separator lines). Earlier rows stay as they are."""
    old, lines, start, end = _find(section, path)
    if start is None:
        new = old.rstrip("\n") + f"\n\n{section}\n\n{preamble.rstrip()}\n\n{header.rstrip()}\n{row}\n"
    else:
        table = [i for i in range(start, end) if lines[i].startswith("|")]
        if table:
            lines.insert(table[-1] + 1, row + "\n")
        else:  # a section without its table yet: start one below its text, a blank line on either side
            at = end
            while at > start + 1 and not lines[at - 1].strip():
                at -= 1
            lines.insert(at, f"\n{header.rstrip()}\n{row}\n" + ("\n" if at == end < len(lines) else ""))
        new = "".join(lines)
    atomic_write(path, new)


def publish_row(section: str, preamble: str, header: str, row: str, dest: Path | None) -> None:
    """Print the table's heading line and ``row``; add the row to ``dest``'s table too, unless ``dest`` is None."""
    print(header.splitlines()[0])
    print(row)
    if dest is not None:
        append_row(section, preamble, header, row, dest)
        print(f"appended to {dest}")
