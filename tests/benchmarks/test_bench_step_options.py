"""benchmarks/bench_step_options.py: the pure parts (options, ratios, the auto verdict, the section's text) and a
tiny end-to-end run of the recipe's step under two options."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench(load_script):
    return load_script("bench_step_options")


@pytest.mark.parametrize("auto,other", [(torch.bfloat16, "precision=fp32"), (None, "precision=bf16")])
def test_options_measure_the_precision_auto_did_not_pick(bench, auto, other):
    names = [o.name for o in bench.options(auto)]
    assert names[0] == "recipe" and other in names and len(names) == len(set(names))
    assert {"compile", "nchw", "sgd-fused", "sgd-foreach", "mkldnn-off", "threads=1", "batch=512"} <= set(names)


def test_flags_are_restored(bench):
    before = (torch.get_num_threads(), torch.backends.mkldnn.enabled, torch.backends.mkldnn.conv.fp32_precision)
    with bench.threads(before[0] + 1), bench.setting(torch.backends.mkldnn, "enabled", False), \
            bench.onednn_fp32_in_bf16():
        assert torch.get_num_threads() == before[0] + 1 and not torch.backends.mkldnn.enabled
        assert torch.backends.mkldnn.conv.fp32_precision == "bf16"
    assert (torch.get_num_threads(), torch.backends.mkldnn.enabled,
            torch.backends.mkldnn.conv.fp32_precision) == before


def test_ratios_are_per_round(bench):
    rates = {"recipe": [100.0, 50.0], "fast": [200.0, 75.0]}
    assert bench.per_round_ratios(rates) == {"recipe": [1.0, 1.0], "fast": [2.0, 1.5]}


def _result(bench, other_ratios, auto="bf16"):
    opts = bench.options(torch.bfloat16 if auto == "bf16" else None)
    other = opts[1].name
    rates = {"recipe": [400.0, 420.0, 410.0], other: [400 * r for r in other_ratios]}
    return {
        "options": [opts[0], opts[1], opts[4]], "rates": rates, "ratios": bench.per_round_ratios(rates),
        "warm_s": {"recipe": 3.0, other: 5.0, opts[4].name: 60.0}, "errors": {opts[4].name: "RuntimeError: no cc"},
        "per_round": {"recipe": 2, other: 1}, "auto": auto, "rounds": 3, "steps": 2, "images": 20000, "batch": 1024,
        "load_min": 0.5, "load_max": 1.5, "cpu": "Test CPU", "native_bf16": auto == "bf16", "avx512_bf16": True,
        "torch": "2.x", "threads": 2, "cores": 2, "overrides": {},
        "profile": {"rows": [{"op": "aten::mkldnn_convolution", "ms_per_step": 900.0, "share": 0.5,
                              "calls_per_step": 7.0}],
                    "total_ms_per_step": 1800.0, "wall_ms_per_step": 2000.0, "conv_share": 0.6},
    }


def test_auto_verdict_fails_only_when_the_other_precision_is_clearly_faster(bench):
    ok, text = bench.auto_verdict(_result(bench, [0.5, 0.52, 0.49]))
    assert ok and "picked bf16" in text and "0.50x" in text and "faster of the two" in text
    ok, text = bench.auto_verdict(_result(bench, [1.03, 1.02, 1.04], auto="fp32"))
    assert ok and "picked fp32" in text and "tie" in text
    ok, text = bench.auto_verdict(_result(bench, [1.3, 1.2, 1.25]))
    assert not ok and "NOT the faster" in text


def test_markdown_has_every_option_the_profile_and_the_environment(bench):
    text = bench.markdown(_result(bench, [0.5, 0.52, 0.49]))
    assert text.startswith(bench.SECTION + "\n")
    assert "Test CPU" in text and "native bf16 (AVX512-BF16 or AMX): yes" in text and "torch 2.x" in text
    assert "load average during the run 0.5-1.5" in text
    assert "| `recipe` |" in text and "| 1.00x |" in text
    assert "| `precision=fp32` | precision=fp32: no autocast (1 step per round: slow) | 200 | 0.50x |" in text
    assert "| `compile` |" in text and "failed: RuntimeError: no cc" in text
    assert "| `aten::mkldnn_convolution` | 900.0 | 50.0% | 7 |" in text
    assert "No option was faster" in text


def test_unknown_option_is_refused(bench):
    with pytest.raises(SystemExit, match="unknown option"):
        bench.run(1, 1, 64, ["warp-drive"], {"batch_size": 8})


@pytest.mark.slow
def test_tiny_run_end_to_end(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "write_section", lambda section, text: (tmp_path / "B.md").write_text(text))
    status = bench.main(["--rounds", "2", "--steps", "1", "--images", "64", "--batch-size", "16",
                         "--only", "threads=1,sgd-foreach", "--write"])
    text = (tmp_path / "B.md").read_text()
    assert status == 0 and "| `threads=1` |" in text and "| `sgd-foreach` |" in text
    assert "op | self CPU ms / step" in text
