"""benchmarks/_rounds.py: the rotation of the contestants over timing rounds, shared by the benchmark scripts."""

from __future__ import annotations

import pytest


@pytest.fixture
def rounds(load_script):
    return load_script("_rounds")


def test_rotation_covers_every_start_and_keeps_every_item(rounds):
    items = ["a", "b", "c"]
    assert [rounds.rotated(items, r)[0] for r in range(4)] == ["a", "b", "c", "a"]
    assert all(sorted(rounds.rotated(items, r)) == items for r in range(3))
    assert rounds.rotated(items, 1) == ["b", "c", "a"] and items == ["a", "b", "c"]  # a new list


def test_rotating_nothing_gives_nothing(rounds):
    assert rounds.rotated([], 5) == []
