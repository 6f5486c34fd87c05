"""benchmarks/bench_ddp.py: the BENCHMARKS.md row from the rounds' results (the launches themselves are run by
hand: ``python benchmarks/bench_ddp.py --smoke --benchmarks-file /tmp/B.md``)."""

from __future__ import annotations

import argparse
import os

import pytest
import torch


@pytest.fixture
def bench(load_script):
    return load_script("bench_ddp")


def test_row(bench, tmp_path, capsys):
    args = argparse.Namespace(model="resnet20", batch_size=128, steps=10)
    rounds = [{1: {"images_per_s": 100.0, "precision": "fp32"}, 2: {"images_per_s": 150.0, "allreduce_share": 0.2}},
              {1: {"images_per_s": 120.0, "precision": "fp32"}, 2: {"images_per_s": 210.0, "allreduce_share": 0.3}},
              {1: {"images_per_s": 110.0, "precision": "fp32"}, 2: {"images_per_s": 176.0, "allreduce_share": 0.1}}]
    env = {"cpu": "Some CPU", "native_bf16": False, "load_min": 1.04, "load_max": 2.5}
    row = bench.summarize(args, rounds, env)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:] == [f"Some CPU, {os.cpu_count()} cores", "no", "1.0-2.5", torch.__version__,
                         "resnet20, 128, fp32", "110", "176", "1.60x", "20%",
                         "3 of 10 steps (1 / 2 processes: 100 / 150; 120 / 210; 110 / 176)"]
    # the speed-up is the median of the per-round ratios (1.5, 1.75, 1.6), not a ratio of medians
    out = tmp_path / "B.md"
    bench.publish_row(bench.SECTION, bench.PREAMBLE, bench.HEADER, row, out)
    assert capsys.readouterr().out.splitlines() == [bench.HEADER.splitlines()[0], row, f"appended to {out}"]
    text = out.read_text()
    assert text.count(bench.SECTION) == 1 and text.rstrip().endswith(row)
