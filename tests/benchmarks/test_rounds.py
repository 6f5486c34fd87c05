"""benchmarks/_rounds.py: the rotation of the contestants over timing rounds, shared by the benchmark scripts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import BENCH


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


def test_scratch_dirs_are_removed_when_the_process_exits():
    # in a child process, since removal happens at exit: the benchmarks' timed runs must not pile up in /tmp
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import _rounds; d = _rounds.scratch_dir('cnnlab-t-');"
            " (d / 'ckpt').write_text('x'); print(d)")
    made = subprocess.run([sys.executable, "-c", code, str(BENCH)], capture_output=True, text=True, check=True)
    path = Path(made.stdout.strip())
    assert path.name.startswith("cnnlab-t-") and not path.exists()
