"""cnnlab summary / compare / lint on zoo names and MODULE:CALLABLE."""

from __future__ import annotations

import json

import pytest
from torch import nn

import cnnlab
from cnnlab.cli import main


def small_net() -> nn.Module:
    """A callable for the MODULE.PATH:CALLABLE form."""
    return nn.Sequential(nn.Conv2d(3, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


SPEC = f"{__name__}:small_net"


def test_summary_json_of_callable(capsys):
    assert main(["summary", SPEC, "--input", "3x10x10", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"]["macs"] == 10 * 10 * 8 * 3 * 25 + 8 * 2
    assert data["input_size"] == [3, 10, 10]


@pytest.mark.parametrize("fmt,marker", [("table", "MACs"), ("csv", "rf_size_h"), ("md", "| layer"),
                                        ("html", "<!DOCTYPE html>")])
def test_summary_formats_to_file(tmp_path, fmt, marker):
    out = tmp_path / f"report.{fmt}"
    assert main(["summary", SPEC, "--input", "3x8x8", "--format", fmt, "-o", str(out), "--depth", "1"]) == 0
    assert marker in out.read_text()


def test_summary_errors_are_one_line(capsys):
    assert main(["summary", SPEC, "--input", "3xfoo"]) == 2
    assert "--input must be CxHxW" in capsys.readouterr().err
    assert main(["summary", "no_such_model_xyz"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["summary", "tests.nowhere:thing"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert main(["summary", "builtins:dict"]) == 2
    assert "returned dict, not an nn.Module" in capsys.readouterr().err


def test_compare_ratios(capsys):
    assert main(["compare", SPEC, SPEC, "--input", "3x8x8", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["params_ratio"] for m in data["models"]] == [1.0, 1.0]


@pytest.mark.skipif(not {"alexnet", "googlenet"} <= set(cnnlab.list_models()), reason="zoo models not registered")
def test_compare_googlenet_alexnet_claims(capsys):
    assert main(["compare", "alexnet", "googlenet", "--format", "json"]) == 0
    alex, goog = json.loads(capsys.readouterr().out)["models"]
    a, g = cnnlab.analyze("alexnet"), cnnlab.analyze("googlenet")
    assert goog["macs_ratio"] == g.macs / a.macs and 1.8 < goog["macs_ratio"] < 2.5  # "about 2x more"
    assert goog["params_ratio"] == (g.params - g.unused_params) / a.params
    assert goog["params_ratio"] < 1 / 8  # several times fewer (paper: 12x, counting the 60M AlexNet)


def test_lint_reports_factorisation(capsys):
    assert main(["lint", SPEC, "--input", "3x8x8"]) == 1  # findings: exit 1, so a CI step fails on them
    out = capsys.readouterr().out
    assert "[factorize]" in out and "28%" in out and "60%" in out
    assert main(["lint", SPEC, "--input", "3x8x8", "--format", "json"]) == 1
    assert json.loads(capsys.readouterr().out)["findings"][0]["rule"] == "factorize"


def clean_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 2))


def test_lint_without_findings_exits_0(capsys):
    assert main(["lint", f"{__name__}:clean_net", "--input", "3x8x8"]) == 0
    assert "no findings" in capsys.readouterr().out


def test_summary_default_depth_and_all(capsys):
    assert main(["summary", "resnet1202"]) == 0
    out = capsys.readouterr().out
    assert "layer3 " in out and "layer3.0" not in out and "deeper rows not shown at depth 1" in out
    assert main(["summary", "resnet1202", "--format", "csv"]) == 0  # data formats keep every row
    assert len(capsys.readouterr().out.splitlines()) == 1 + 6012
    assert main(["summary", SPEC, "--input", "3x8x8", "--depth", "all"]) == 0
    assert "deeper rows" not in capsys.readouterr().out
    assert main(["summary", SPEC, "--input", "3x8x8", "--depth", "0"]) == 0
    out = capsys.readouterr().out
    assert "layer" not in out.split("\n\n")[0] and "MACs" in out


def test_summary_depth_must_be_a_depth(capsys):
    with pytest.raises(SystemExit):
        main(["summary", SPEC, "--depth", "-1"])
    assert "give a depth >= 0 or 'all'" in capsys.readouterr().err


def test_summary_fits_the_terminal(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "70")
    assert main(["summary", "resnet20", "--depth", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(map(len, lines)) <= 70 and any("left out to fit 70 columns" in line for line in lines)
    monkeypatch.setenv("COLUMNS", "70")
    assert main(["card", "googlenet"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 70
    assert main(["models"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 70


def test_compare_html_is_one_self_contained_page(tmp_path, capsys):
    out = tmp_path / "compare.html"
    assert main(["compare", SPEC, f"{__name__}:clean_net", "--input", "3x8x8", "--format", "html", "-o", str(out)]) == 0
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "http" not in page and "<link" not in page and "src=" not in page  # nothing fetched from elsewhere
    assert '<div class="cnnlab-report">' in page and "<svg" in page and 'onclick="sortBy(' in page  # summary's look
    small, clean = 8 * 8 * 8 * 3 * 25 + 8 * 2, 8 * 8 * 8 * 3 * 9 + 8 * 2
    assert f"{small:,}" in page and f"{clean:,}" in page and "x MACs" in page
    assert f"{small / clean:.1f}x fewer multiply-adds" in page  # the table's notes, as in the text format
    assert main(["compare", SPEC, "--input", "3x8x8", "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
