"""Experiment reports: Markdown with linked PNGs, one self-contained HTML page, the plots, and no matplotlib on
import."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

import cnnlab.experiments as E
from cnnlab.experiments.core import Analysis, ExperimentResult
from cnnlab.experiments.report import FORMATS, paper_test_errors, write_report

pytestmark = pytest.mark.usefixtures("one_thread")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> ExperimentResult:
    """A real degradation run at the smoke budget (synthetic data, 2 steps per arm), reports not yet written."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module scope: the function-scoped one_thread fixture comes too late for this
    try:
        return E.run("degradation", "smoke", tmp_path_factory.mktemp("exp") / "degradation", report_formats=())
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def written(smoke) -> list[Path]:
    return write_report(smoke)


class Page(HTMLParser):
    """Collects what the tests look at and checks that every element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []  # tag, attribute, value
        self.text: list[str] = []  # the visible text of <body>, in order

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if data.strip() and "body" in self.stack:
            self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def json_blocks(md: str) -> list:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", md, re.S)]


def test_files_written(smoke, written):
    assert written == [smoke.out / "curves.png", smoke.out / "costs.png", smoke.out / "report.md",
                       smoke.out / "report.html"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert not list(smoke.out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_markdown_has_claim_verdict_tables_and_command(smoke, written):
    md = (smoke.out / "report.md").read_text()
    first = md.splitlines()[0]
    assert "SMOKE" in first and "no verdict" in first
    exp = smoke.experiment
    assert exp.claim in md and exp.source in md and "[arXiv:1512.03385](https://arxiv.org/abs/1512.03385)" in md
    assert f"**Verdict:** {smoke.verdict}" in md
    for comparison in smoke.analysis.comparisons:
        assert f"- {comparison.describe()}" in md
    assert "| quantity | paper | measured | source / convention |" in md
    for row in smoke.analysis.rows:
        assert "| " + " | ".join(row) + " |" in md
    assert smoke.record["command"] in md
    for arm, cost in smoke.outcome.costs.items():
        assert f"| {exp.arm(arm).title} | {cost['model']} | {cost['params']:,} | {cost['trained_params']:,} | " \
               f"{cost['macs']:,} | {cost['receptive_field']} |" in md
    assert "MACs = multiply-accumulates of conv and linear layers, cnnlab.analysis convention, see " \
           "docs/analysis.md" in md
    assert "](curves.png)" in md and "](costs.png)" in md
    for run in smoke.outcome.runs:  # arm, seed, final test accuracy, training accuracy
        assert f"| {exp.arm(run.arm).title} | {run.seed} | {100 * run.test_acc:.2f}% | " in md
    assert "AMD" in md or smoke.record["environment"]["cpu"] in md
    assert smoke.analysis.notes[0] in md


def test_markdown_configs_shared_once_then_per_arm(smoke, written):
    shared, differing = json_blocks((smoke.out / "report.md").read_text())
    assert shared["batch_size"] == 16 and shared["max_steps"] == 2 and "model" not in shared
    assert differing == {r.arm: {"model": r.arm} for r in smoke.outcome.runs}


def test_html_is_one_self_contained_balanced_page(smoke, written):
    text = (smoke.out / "report.html").read_text()
    page = parse(text)
    assert page.errors == [] and page.stack == []
    assert {"script", "link", "iframe", "object"}.isdisjoint(page.tags)
    assert "style" in page.tags  # inline CSS
    srcs = [v for tag, k, v in page.attrs if k == "src"]
    hrefs = [v for tag, k, v in page.attrs if k == "href"]
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    for src in srcs:
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert data.startswith(PNG_SIGNATURE)
        assert Image.open(io.BytesIO(data)).size[0] >= 600
    assert hrefs and all(h.startswith("https://arxiv.org/abs/") for h in hrefs)
    assert not re.search(r"url\(|@import", text)  # no resources pulled in by the CSS either
    body = " ".join(page.text)
    assert page.text[0].startswith("SMOKE BUDGET")  # the first line of the page
    assert smoke.experiment.claim in body and smoke.verdict in body and smoke.record["command"] in body
    for comparison in smoke.analysis.comparisons:
        assert comparison.describe() in body  # escaped in the file (->), plain text once parsed
    assert "-&gt;" in text and "<details>" in text


def test_pngs_are_readable_images(smoke, written):
    for name in ("curves.png", "costs.png"):
        with Image.open(smoke.out / name) as image:
            assert image.format == "PNG"
            width, height = image.size
            assert 600 <= width <= 2000 and 250 <= height <= 1500


def test_unknown_format_raises_before_writing(smoke, tmp_path):
    elsewhere = dataclasses.replace(smoke, out=tmp_path / "r")
    with pytest.raises(ValueError, match="'pdf'.*allowed: md, html"):
        write_report(elsewhere, ("md", "pdf"))
    assert not (tmp_path / "r").exists()
    assert set(FORMATS) == {"md", "html"}


def test_one_format_alone(smoke, tmp_path):
    paths = write_report(dataclasses.replace(smoke, out=tmp_path), "html")
    assert [p.name for p in paths] == ["curves.png", "costs.png", "report.html"]


def test_text_is_escaped_in_both_formats(smoke, tmp_path):
    hostile = dataclasses.replace(smoke.experiment, claim='<script>alert("x")</script> a | b *c* & [d](e)')
    result = dataclasses.replace(smoke, experiment=hostile, out=tmp_path)
    write_report(result)
    text = (tmp_path / "report.html").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert hostile.claim in " ".join(parse(text).text)
    md = (tmp_path / "report.md").read_text()
    assert r"\<script>" in md and r"\*c\*" in md and r"\[d\](e)" in md


def test_real_budget_several_seeds_and_extra_test_sets(smoke, tmp_path):
    """Not smoke: no banner, the verdict stands; two seeds add the mean table; extra test sets add columns."""
    runs = [dataclasses.replace(r, seed=seed, extra_test_acc={"test-jpeg75.npz": 0.5 + 0.1 * seed})
            for seed in (0, 1) for r in smoke.outcome.runs]
    outcome = dataclasses.replace(smoke.outcome, runs=runs)
    record = {**smoke.record, "data": {**smoke.record["data"], "synthetic": False}}
    budget = dataclasses.replace(smoke.experiment.budgets["quick"], seeds=2, minutes="~15 (2-core CPU)")
    result = dataclasses.replace(smoke, outcome=outcome, record=record, budget=budget, out=tmp_path,
                                 verdict=E.REPRODUCED)
    write_report(result)
    md = (tmp_path / "report.md").read_text()
    assert md.startswith("# Experiment degradation (quick budget)")
    assert "**Verdict:** reproduced" in md and "SMOKE" not in md
    assert "test accuracy: test-jpeg75.npz" in md and "| 60.00% |" in md
    assert "Mean +/- sample standard deviation over seeds" in md and "(n=2)" in md
    assert budget.note in md and "expected wall time ~15 min (2-core CPU)" in md


def test_paper_test_errors_become_reference_lines(smoke):
    rows = [("resnet20: training / test error", "8.75% test error (Table 6)", "x", "y"),
            ("plain20: training error", "curve only", "x", "y"),
            ("resnet110: error", "6.43% test error", "x", "y")]  # resnet110 did not run: no line
    result = dataclasses.replace(smoke, analysis=Analysis(rows, []))
    assert paper_test_errors(result) == {"resnet20": 8.75}


def test_importing_cnnlab_does_not_import_matplotlib():
    code = ("import sys, cnnlab, cnnlab.experiments, cnnlab.experiments.report, cnnlab.experiments.plots; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
