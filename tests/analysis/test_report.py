"""Renderers of CostReport: JSON round trip, CSV, Markdown, table, self-contained HTML."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import shutil
import subprocess

import pytest
import torch
from torch import nn

from cnnlab.analysis import analyze


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(self.stage2(self.stage1(x)), 1), 1))


@pytest.fixture(scope="module")
def report():
    return analyze(Net(), (3, 16, 16))


def test_json_round_trip_equals_to_dict(report):
    data = json.loads(report.to_json())
    assert data == report.to_dict()
    assert data["total"]["macs"] == 16 * 16 * 8 * 27 + 8 * 8 * 16 * 72 + 16 * 4
    assert [layer["name"] for layer in data["layers"]] == ["", "stage1", "stage1.0", "stage1.1", "stage2",
                                                          "stage2.0", "stage2.1", "head"]
    assert data["layers"][4]["depth"] == 1 and data["layers"][5]["depth"] == 2


def test_csv_has_one_row_per_layer_with_numbers(report):
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert [r["name"] for r in rows] == [r.name for r in report.at_depth(None)]
    conv = rows[[r["name"] for r in rows].index("stage2.0")]
    assert int(conv["macs"]) == 8 * 8 * 16 * 72 and conv["rf_size_h"] == "5" and conv["rf_jump_w"] == "2"


def test_depth_grouping_in_table_and_markdown(report):
    table = report.to_table(depth=1)
    assert "stage1" in table and "stage1.0" not in table
    md = report.to_markdown(depth=1)
    body = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(body) == 1 + 3  # header + stage1, stage2, head
    assert f"{report.macs:,}" in md


def test_html_is_self_contained_and_sortable(report):
    page = report.to_html()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)  # nothing fetched from elsewhere
    assert "http" not in page
    assert "sortBy(" in page and "<svg" in page and "polyline" in page
    assert page.count("<tr data-name=") == len(report.at_depth(None))


def test_render_rejects_unknown_format(report):
    with pytest.raises(ValueError, match="table, json, csv, md, html"):
        report.render("xml")
    with pytest.raises(KeyError, match="no layer named"):
        report.layer("stage9")


def test_print_shows_the_table_and_repr_is_short(report):
    assert str(report) == report.to_table(None, width=None)  # not a terminal here: full width, every row
    assert repr(report) == f"CostReport(model='Net', input=1x3x16x16, params={report.params:,}, " \
                           f"macs={report.macs:,}, layers=8)"


def test_depth_0_is_the_totals(report):
    table = report.to_table(depth=0)
    assert "layer" not in table and "stage1" not in table and f"{report.macs:,}" in table
    assert "| layer" not in report.to_markdown(depth=0)
    rows = list(csv.DictReader(io.StringIO(report.to_csv(depth=0))))
    assert len(rows) == 1 and rows[0]["name"] == "" and int(rows[0]["macs"]) == report.macs


def test_a_1000_layer_network_shows_its_stages():
    deep = analyze("resnet1202")
    assert deep.default_depth() == 1 and analyze("resnet50").default_depth() is None
    table = str(deep)
    assert len(table.splitlines()) < 20 and "layer3" in table and "layer3.0" not in table
    assert "6,007 deeper rows not shown at depth 1 of 4" in table


@pytest.mark.parametrize("width", [60, 80, 100])
def test_table_fits_the_width(width):
    wide = analyze("resnet56")
    lines = wide.to_table(3, width=width).splitlines()
    assert max(map(len, lines)) <= width, max(lines, key=len)
    assert "left out to fit" in "\n".join(lines) and "params" in lines[1] and "MACs" in lines[1]
    assert "layer1.0.conv1" in "\n".join(lines)
    assert max(map(len, wide.to_table(3).splitlines())) > 100  # without a width: every column in full


def test_html_shares_on_one_scale_tree_and_rf_axes(report):
    page = report.to_html()
    total = report.macs
    stage2 = report.layer("stage2").macs
    assert f"{100 * stage2 / total:.1f}% of the model" in page  # the stage chart's bars: % of the model
    assert "0%</text>" in page and "100%</text>" in page  # one axis for MACs and parameters
    assert page.count("<details") == 1 + 2  # the model, stage1, stage2 (head is a leaf)
    assert "receptive field (pixels)" in page and "layer (execution order" in page  # axes
    assert ">stage1<" in page.replace("</title>", "<") and "input 16 px" in page  # stage labels, input line
    assert f'data-v="{100 * stage2 / total:.6f}"' in page  # per-layer bar cells, sortable by share
    assert 'data-parent="stage2"' in page


def test_repr_html_is_a_fragment_for_jupyter(report):
    fragment = report._repr_html_()
    assert fragment.startswith('<div class="cnnlab-report">') and "<html" not in fragment
    assert "<script" not in fragment and "<details" in fragment and "<svg" in fragment
    assert all(line.startswith(".cnnlab-report") for line in fragment.split("<style>")[1].split("</style>")[0]
               .strip().splitlines())  # styles scoped: nothing leaks into the notebook


CHROMIUM = next((shutil.which(b) for b in ("chromium-headless-shell", "chromium", "chromium-browser",
                                           "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed")
def test_page_draws_and_sorts_in_headless_chromium(tmp_path):
    """The page runs in a real browser without script errors; sorting keeps children under their parents."""
    rep = analyze("googlenet")
    page = rep.to_html(depth=2)
    probe = """<script>
    window.addEventListener('error', e => document.title = 'ERROR ' + e.message);
    </script>"""
    check = """<script>
    try {
      sortBy(4); sortBy(4);  // MACs, descending
      const rows = Array.from(document.querySelectorAll('#layers tbody tr'));
      const names = rows.map(r => r.dataset.name);
      let ok = true;
      rows.forEach((r, i) => { const p = r.dataset.parent;
        if (p && names.indexOf(p) > i) ok = false; });  // a parent always comes before its children
      const svgs = Array.from(document.querySelectorAll('svg')).map(s => s.getBBox().width > 0);
      document.body.dataset.result = JSON.stringify({first: names[0], ok: ok, n: rows.length, svgs: svgs,
        details: document.querySelectorAll('details').length});
    } catch (e) { document.title = 'ERROR ' + e.message; }
    </script>"""
    path = tmp_path / "report.html"
    path.write_text(page.replace("<head>", "<head>" + probe).replace("</body>", check + "</body>"))
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", path.as_uri()],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert "<title>ERROR" not in dom, dom[:300]
    result = json.loads(html.unescape(re.search(r'data-result="([^"]*)"', dom).group(1)))
    assert result["ok"] and result["n"] == len(rep.at_depth(2)) and all(result["svgs"])
    assert result["first"] == "conv3"  # the stage with the most MACs (21.9%) comes first
    containers = {r.name.rpartition(".")[0] if r.depth > 1 else "" for r in rep.layers[1:]}
    assert result["details"] == len(containers)  # the module tree: one <details> per module with children


def test_architecture_diagram_shows_branches_shortcuts_and_repeats():
    from cnnlab.analysis.diagram import diagram as _diagram

    googlenet = _diagram(analyze("googlenet"))
    assert googlenet.count("concat -&gt; ") == 9 and "1x1 96 &gt; 3x3 128" in googlenet  # 3a's branch1
    assert "shortcut" not in googlenet and "not run in eval mode: aux_heads" in googlenet
    train = _diagram(analyze("googlenet", training=True))
    assert "aux_heads: 2 x GoogLeNetAux" in train
    assert "side outputs from the trunk: 1x512x14x14, 1x528x14x14" in train
    assert train.index(">output<") < train.index("aux_heads") and ">1x1000<" in train  # the trunk's output
    resnet = _diagram(analyze("resnet50"))
    assert "layer3: 6 x Bottleneck" in resnet and resnet.count("shortcut in each block") == 4
    deep = _diagram(analyze("resnet1202"))
    assert "layer1: 200 x BasicBlock" in deep and len(deep) < 20_000  # 1202 layers, still a few boxes
    vgg = _diagram(analyze("vgg16"))
    assert "concat" not in vgg and "shortcut" not in vgg and vgg.count("<rect") == 2 + 19  # input, output, stages
