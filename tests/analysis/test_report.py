"""Renderers of CostReport: JSON round trip, CSV, Markdown, table, self-contained HTML."""

from __future__ import annotations

import csv
import io
import json
import re

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
    assert page.count("<tr>") == len(report.at_depth(None)) + 1


def test_render_rejects_unknown_format(report):
    with pytest.raises(ValueError, match="table, json, csv, md, html"):
        report.render("xml")
    with pytest.raises(KeyError, match="no layer named"):
        report.layer("stage9")
