"""benchmarks/bench_analysis_peers.py: a peer that is not installed is skipped with a line saying so; the per-type
factors that explain the differences; the section's tables. Runs with cnnlab and torch alone (the peers live in
another environment), on a tiny network."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench(load_script):
    return load_script("bench_analysis_peers")


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)).eval()


def test_missing_peers_are_skipped_with_a_line(bench, monkeypatch):
    # as if every peer but thop and fvcore were installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("thop", "fvcore")
                        else object())
    present, skipped = bench.available()
    names = [p.name for p in present]
    assert "thop" not in names and "fvcore FlopCountAnalysis" not in names and "torchinfo" in names
    assert "cnnlab.analyze" in names and "FlopCounterMode" in names  # torch's own: always there
    assert skipped == ["fvcore FlopCountAnalysis: not installed (`pip install fvcore`), skipped",
                       "thop: not installed (`pip install thop`), skipped"]


def test_reference_and_factors_on_a_tiny_network(bench):
    from cnnlab.analysis import analyze

    ref = bench.reference_by_type(analyze(tiny(), (3, 8, 8)))
    assert ref["macs"]["Conv2d"] == 8 * 8 * 4 * 3 * 9 and ref["macs"]["Linear"] == 4 * 5
    assert ref["elements"]["BatchNorm2d"] == 4 * 8 * 8 and ref["elements"]["ReLU"] == 4 * 8 * 8
    assert ref["elements"]["MaxPool2d"] == 4 * 4 * 4
    # a counter that adds 2 per batch-norm element and 1 per pooling input element, plus 7 outside modules
    count = bench.Count(ref["macs"]["Conv2d"] + 20 + 2 * 256 + 256 + 7, "MACs", None,
                        {"Conv2d": ref["macs"]["Conv2d"], "Linear": 20, "BatchNorm2d": 512, "MaxPool2d": 256})
    f = bench.factors(count, ref)
    assert f == {"Conv2d": 1.0, "Linear": 1.0, "BatchNorm2d": 2.0, "MaxPool2d": 4.0, "rest": 7}


def test_measure_and_render_with_the_counters_torch_has(bench, monkeypatch):
    monkeypatch.setattr(bench, "build", lambda name: (tiny(), (3, 8, 8), "test"))
    peers = [p for p in bench.PEERS if p.package is None]  # cnnlab.analyze and FlopCounterMode
    row = bench.measure("tiny", peers, rounds=2)
    ours, flops = row["counts"]["cnnlab.analyze"], row["counts"]["FlopCounterMode"]
    assert flops.value == 2 * ours.value == 2 * row["macs"]  # 2 FLOPs per multiply-add, conv + linear only
    assert set(row["times"]) == {"cnnlab.analyze", "FlopCounterMode"} and row["aux_macs"] == 0
    text = bench.render([row], peers, ["thop: not installed (`pip install thop`), skipped"], 2, (0.5, 1.0))
    assert text.startswith(bench.SECTION + "\n") and "- thop: not installed" in text
    assert f"| tiny | {ours.value:,} | {flops.value:,} (+0.00% /2) |" in text
    assert "| FlopCounterMode | 2.000 | 2.000 | 0 | 0 | 0 | n/a | 0 |  | tiny 0 |" in text
    assert "| cnnlab.analyze | 1.000 | 1.000 |" in text


def test_a_failing_counter_is_reported_not_fatal(bench, monkeypatch):
    monkeypatch.setattr(bench, "build", lambda name: (tiny(), (3, 8, 8), "test"))

    def broken(model, size):
        raise RuntimeError("cannot trace this\nmore")

    peers = [bench.PEERS[0], bench.Peer("broken", None, broken, "MACs")]
    row = bench.measure("tiny", peers, rounds=1)
    assert row["errors"] == {"broken": "RuntimeError: cannot trace this"} and "broken" not in row["times"]
    text = "\n".join(bench.render_counts([row], peers) + bench.render_times([row], peers))
    assert "failed: RuntimeError: cannot trace this" in text and "| failed |" in text


def test_flop_counts_are_halved_for_the_percentage(bench):
    assert bench.as_macs(bench.Count(10, "FLOPs (2 per MAC)", None)) == 5
    assert bench.as_macs(bench.Count(10, "MACs", None)) == 10
    assert bench._span([1.0, 1.0004]) == "1.000" and bench._span([1.0, 2.0]) == "1.000-2.000"
    assert bench._pct(101, 100) == "+1.00%"


def test_unknown_model_is_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["--models", "resnet9000"])


def test_flop_counter_mode_sees_the_same_convolutions(bench):
    count = bench.run_flop_counter(tiny(), (3, 8, 8))
    assert count.by_type["Conv2d"] == 2 * 8 * 8 * 4 * 3 * 9 and count.by_type["Linear"] == 2 * 20
    assert torch.is_grad_enabled()  # the counter left autograd as it was


def test_saved_results_render_again_without_measuring(bench, monkeypatch, tmp_path, capsys):
    import dataclasses
    import json

    monkeypatch.setattr(bench, "build", lambda name: (tiny(), (3, 8, 8), "test"))
    peers = [p for p in bench.PEERS if p.package is None]
    row = bench.measure("tiny", peers, rounds=1)
    saved = {"peers": [p.name for p in peers], "skipped": [], "rounds": 1, "when": "2026-01-01 00:00",
             "load": [0.1, 0.2],
             "rows": [{**row, "counts": {k: dataclasses.asdict(c) for k, c in row["counts"].items()}}]}
    (tmp_path / "r.json").write_text(json.dumps(saved))
    assert bench.main(["--render", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().out.strip() == bench.render([row], peers, [], 1, (0.1, 0.2), "2026-01-01 00:00").strip()
