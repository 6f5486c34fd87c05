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
