"""benchmarks/_rounds.py: the rotation of the contestants over timing rounds, shared by the benchmark scripts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
_spec = importlib.util.spec_from_file_location("_rounds", BENCH / "_rounds.py")
rounds = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rounds)


def test_rotation_covers_every_start_and_keeps_every_item():
    items = ["a", "b", "c"]
    assert [rounds.rotated(items, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert all(sorted(rounds.rotated(items, r)) == items for r in range(3))
    assert rounds.rotated(items, 1) == ["b", "c", "a"] and items == ["a", "b", "c"]  # a new list


def test_rotating_nothing_gives_nothing():
    assert rounds.rotated([], 5) == []
