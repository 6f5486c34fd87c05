"""Shared by the benchmark scripts: the order in which each timing round measures its contestants, and scratch
directories for the runs they time."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory, removed when the process exits: the timed runs' checkpoints are not results, and
    a test suite that calls the benchmarks many times must not leave them behind."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def rotated(items: list, r: int) -> list:
    """``items`` starting at index ``r`` (mod its length): each round begins with another contestant, so none is
    always measured first; an empty list stays empty."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]
