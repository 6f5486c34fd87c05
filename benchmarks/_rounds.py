"""Shared by the benchmark scripts: the order in which each timing round measures its contestants."""

from __future__ import annotations


def rotated(items: list, r: int) -> list:
    """``items`` starting at index ``r`` (mod its length): each round begins with another contestant, so none is
    always measured first; an empty list stays empty."""
    k = r % len(items) if items else 0
    return items[k:] + items[:k]
