"""The report of an experiment: Markdown (``report.md``, PNGs beside it) and one self-contained HTML page.

Both formats render the same list of blocks, built once from the ``ExperimentResult``: what was claimed and
where, the verdict and the comparisons that decided it, paper vs measured, every run, the exact costs, the
plots, the budget, the command, the resolved configs, the environment, the seeds and wall time, the notes.
The HTML page embeds its images as data URIs and its CSS inline: it needs no other file, no network and no
JavaScript. Every piece of text is escaped for the format it goes into.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnlab._io import atomic_write
from cnnlab._text import md_table
from cnnlab.experiments.core import ExperimentResult, mean_pct, pct

FORMATS = {"md": "report.md", "html": "report.html"}
CURVES, COSTS = "curves.png", "costs.png"
SMOKE_BANNER = ("SMOKE BUDGET: synthetic tensors and seconds of training. These numbers test the code path "
                "only; they measure nothing and give no verdict.")
MACS_CONVENTION = ("MACs = multiply-accumulates of conv and linear layers, cnnlab.analysis convention, see "
                   "docs/analysis.md; FLOPs = 2 x MACs. Parameters are exact counts of the built network.")
_ARXIV = re.compile(r"arXiv:(\d{4}\.\d{4,5}(?:v\d+)?)")
# an analysis row whose paper column starts "8.75% test error" and whose quantity starts "<arm>:" gives that
# arm's reference line on the error curves
_PAPER_TEST_ERROR = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*test error")
# a table cell that is a number (right-aligned): counts, percentages, durations, "n/a"
_NUMBER = re.compile(r"^[-+]?[\d,.]+(%| s| min \d+ s| h \d+ min)?( \+/- [\d.]+ \(n=\d+\))?$|^n/a$")


# ---------------------------------------------------------------- the blocks both formats render
@dataclass(frozen=True)
class Banner:
    text: str


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str
    label: str = ""  # shown in bold before the text


@dataclass(frozen=True)
class Items:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Code:
    text: str
    lang: str = ""
    title: str = ""  # a collapsible block in HTML, a bold line above it in Markdown


@dataclass(frozen=True)
class Image:
    file: str
    alt: str
    data: bytes


Block = Banner | Heading | Para | Items | Table | Code | Image


# ---------------------------------------------------------------- formatting helpers
def _count(n: Any) -> str:
    return "n/a" if n is None else f"{int(n):,}"


def _speed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _minutes(text: str) -> str:
    """Budget.minutes is in minutes unless it names a unit: '~15 (2-core CPU)' -> '~15 min (2-core CPU)'."""
    return re.sub(r"^(~?\s*[\d.]+(?:\s*-\s*[\d.]+)?)(?!\s*(?:h|min|s)\b)(?![\d.])", r"\1 min", text.strip())


def _options(options: Any) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in dict(options or {}).items()) or "-"


def paper_test_errors(result: ExperimentResult) -> dict[str, float]:
    """Arm -> the paper's final test error (%), from analysis rows "<arm>: ..." whose paper value starts
    "<x>% test error"; these become the dotted reference lines of the curves."""
    arms = {r.arm for r in result.outcome.runs}
    found = {}
    for quantity, paper, *_ in result.analysis.rows:
        arm = str(quantity).split(":", 1)[0].strip()
        match = _PAPER_TEST_ERROR.match(str(paper))
        if arm in arms and match:
            found[arm] = float(match.group(1))
    return found


def _titles(result: ExperimentResult) -> dict[str, str]:
    """Arm name -> label, in the experiment's order, for the arms that ran or were costed."""
    present = {r.arm for r in result.outcome.runs} | set(result.outcome.costs)
    return {a.name: a.title for a in result.experiment.arms if a.name in present}


def _configs(result: ExperimentResult) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str]]:
    """(keys shared by every arm, each arm's differing keys, arms whose config.json is missing).

    Each arm shows the config of its first seed; runs of one arm differ only in ``seed``."""
    per_arm: dict[str, dict[str, Any]] = {}
    missing = []
    for run in sorted(result.outcome.runs, key=lambda r: r.seed):
        if run.arm in per_arm or run.arm in missing:
            continue
        try:
            per_arm[run.arm] = json.loads((Path(run.run_dir) / "config.json").read_text())["config"]
        except (OSError, ValueError, KeyError):
            missing.append(run.arm)
    if not per_arm:
        return {}, {}, missing
    first = next(iter(per_arm.values()))
    shared = {k: v for k, v in first.items() if all(k in c and c[k] == v for c in per_arm.values())}
    differing = {arm: {k: v for k, v in c.items() if k not in shared} for arm, c in per_arm.items()}
    return shared, differing, missing


# ---------------------------------------------------------------- the report, as blocks
def build(result: ExperimentResult, images: dict[str, bytes]) -> list[Block]:
    """The report of ``result`` as a list of blocks; ``images`` maps PNG file names to their bytes."""
    exp, budget, outcome, analysis, record = (result.experiment, result.budget, result.outcome, result.analysis,
                                              result.record)
    smoke = budget.name == "smoke" or bool(record.get("data", {}).get("synthetic"))
    titles = _titles(result)
    blocks: list[Block] = []
    if smoke:
        blocks.append(Banner(SMOKE_BANNER))
    blocks += [Heading(1, f"Experiment {exp.name} ({budget.name} budget)"),
               Para(exp.claim, "Claim"),
               Para(f"{exp.paper}; {exp.source}", "Source")]
    if exp.references:
        blocks += [Heading(3, "The paper's figures"),
                   Table(("quantity", "paper", "where"), tuple((r.quantity, r.value, r.source)
                                                               for r in exp.references))]

    blocks += [Heading(2, "Verdict"), Para(result.verdict, "Verdict")]
    if analysis.comparisons:
        lead = ("The comparisons below would decide it on real data; on synthetic smoke data they decide nothing."
                if smoke else "What decided it (mean over seeds; a difference counts only beyond the noise):")
        blocks += [Para(lead), Items(tuple(c.describe() for c in analysis.comparisons))]

    blocks += [Heading(2, "Paper vs measured"),
               Table(("quantity", "paper", "measured", "source / convention"),
                     tuple(tuple(str(c) for c in row) for row in analysis.rows))]

    blocks += [Heading(2, "Runs")]
    extra = sorted({label for r in outcome.runs for label in r.extra_test_acc})
    header = ("arm", "seed", f"test accuracy ({_count(outcome.test_images)} images)",
              *(f"test accuracy: {e}" for e in extra), "training accuracy (last epoch)", "images/s (median)",
              "wall time")
    order = {arm: i for i, arm in enumerate(titles)}
    runs = sorted(outcome.runs, key=lambda r: (order.get(r.arm, len(order)), r.seed))
    blocks.append(Table(header, tuple(
        (titles.get(r.arm, r.arm), str(r.seed), pct(r.test_acc), *(pct(r.extra_test_acc.get(e)) for e in extra),
         pct(r.train_acc), _speed(r.images_per_s), _duration(r.wall_s)) for r in runs)))
    if any(len(outcome.values(arm, "test_acc")) > 1 for arm in titles):
        blocks += [Para("Mean +/- sample standard deviation over seeds:"),
                   Table(("arm", "test accuracy", "training accuracy (last epoch)"), tuple(
                       (label, mean_pct(outcome.values(arm, "test_acc")), mean_pct(outcome.values(arm, "train_acc")))
                       for arm, label in titles.items()))]

    blocks += [Heading(2, "Exact cost per arm")]
    costs = outcome.costs
    size = "x".join(str(s) for s in exp.input_size)
    with_options = any(costs[a].get("options") for a in costs)
    with_train_macs = any(costs[a].get("train_macs", costs[a]["macs"]) != costs[a]["macs"] for a in costs)
    header = ("arm", "model", *(("options",) if with_options else ()), "parameters",
              "parameters trained (aux heads)", f"MACs at {size}", *(("MACs in training (aux heads)",)
                                                                     if with_train_macs else ()),
              "receptive field (pixels)")
    blocks.append(Table(header, tuple(
        (titles.get(arm, arm), str(c["model"]), *((_options(c.get("options")),) if with_options else ()),
         _count(c["params"]), _count(c.get("trained_params")), _count(c["macs"]),
         *((_count(c.get("train_macs")),) if with_train_macs else ()), _count(c.get("receptive_field")))
        for arm, c in sorted(costs.items(), key=lambda item: order.get(item[0], len(order))))))
    blocks.append(Para(f"{MACS_CONVENTION} Inputs {size}, batch 1, inference mode (aux heads off) unless the "
                       f"column says training; receptive field of the last layer before the head, in input "
                       f"pixels.", "Units"))

    blocks += [Heading(2, "Plots"),
               Image(CURVES, "training error (dashed) and test error (solid) per epoch, every run",
                     images[CURVES]),
               Image(COSTS, "parameters and MACs per arm", images[COSTS])]

    blocks += [Heading(2, "Budget"),
               Para(f"{budget.name}; {budget.seeds} seed(s) per arm"
                    + (f"; expected wall time {_minutes(budget.minutes)}" if budget.minutes else ""), "Budget"),
               Para(budget.note or ("synthetic data, a few steps: exercises the code path only" if smoke
                                    else "nothing is scaled down"), "Scaled down")]

    blocks += [Heading(2, "Command"), Code(str(record.get("command", "")), "sh")]

    shared, differing, missing = _configs(result)
    blocks += [Heading(2, "Resolved configs"),
               Para("The TrainConfig each run resolved (runs/<run>/config.json): the keys every arm shares once, "
                    "then what differs per arm. Runs of one arm differ only in seed.")]
    if shared:
        blocks.append(Code(json.dumps(shared, indent=2), "json", f"shared by every arm ({len(shared)} keys)"))
    if differing:  # one line per arm: the keys that set the arms apart, side by side
        lines = ",\n".join(f"  {json.dumps(arm)}: {json.dumps(values)}" for arm, values in differing.items())
        blocks.append(Code("{\n" + lines + "\n}", "json", "what differs per arm"))
    if missing:
        blocks.append(Para(f"no config.json found for: {', '.join(missing)}", "Missing"))

    env = record.get("environment", {})
    load = env.get("load_average")
    bf16 = env.get("native_bf16")
    blocks += [Heading(2, "Environment"), Table(("", ""), (
        ("cnnlab", f"{env.get('cnnlab', 'n/a')} (git {env.get('git_commit') or 'unknown'})"),
        ("torch / python", f"{env.get('torch', 'n/a')} / {env.get('python', 'n/a')}"),
        ("CPU", f"{env.get('cpu', 'n/a')} ({env.get('cpu_count', 'n/a')} logical CPUs)"),
        ("native bf16 on the CPU", "n/a" if bf16 is None else "yes" if bf16 else "no"),
        ("GPU", str(env.get("gpu") or "none")),
        ("torch threads", str(env.get("threads", "n/a"))),
        ("load average at the start (1 / 5 / 15 min)",
         ", ".join(f"{v:.2f}" for v in load) if load else "n/a"),
        ("data", _data(record.get("data", {}))),
    ))]

    total = sum(float(e.get("wall_s") or 0.0) for e in record.get("runs", {}).values())
    seeds = sorted({r.seed for r in outcome.runs})
    blocks += [Heading(2, "Seeds and wall time"), Items((
        f"seeds: {', '.join(map(str, seeds)) or 'none'} ({budget.seeds} per arm; seed k of every arm shares "
        f"its data order and initialisation seed)",
        f"runs: {len(outcome.runs)}; total training wall time {_duration(total)}",
        f"started {record.get('started', 'n/a')}, finished {record.get('finished', 'n/a')}",
    ))]
    if analysis.notes:
        blocks += [Heading(2, "Notes"), Items(tuple(analysis.notes))]
    return blocks


def _data(data: dict[str, Any]) -> str:
    if data.get("synthetic"):
        return "synthetic tensors (smoke budget)"
    if data.get("train_file") or data.get("test_file"):
        text = f"train {data.get('train_file')}, test {data.get('test_file')}"
    else:
        text = f"{data.get('data', 'n/a')} from {data.get('data_dir', 'n/a')}"
    extra = data.get("extra_test_files") or []
    return text + (f"; further test sets: {', '.join(map(str, extra))}" if extra else "")


# ---------------------------------------------------------------- Markdown
def _md(text: str, table: bool = False) -> str:
    """Escape what Markdown would read as markup (code, emphasis, links, HTML) and link arXiv ids."""
    text = re.sub(r"([\\`*\[\]<])", r"\\\1", str(text))
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)
    if table:
        text = text.replace("|", r"\|").replace("\n", " ")
    return _ARXIV.sub(lambda m: f"[{m.group(0)}](https://arxiv.org/abs/{m.group(1)})", text)


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    return "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))


def render_md(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Banner):
            out.append(f"> **{_md(b.text)}**")
        elif isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md(b.text)}")
        elif isinstance(b, Para):
            out.append((f"**{_md(b.label)}:** " if b.label else "") + _md(b.text))
        elif isinstance(b, Items):
            out.append("\n".join(f"- {_md(item)}" for item in b.items))
        elif isinstance(b, Table):
            numeric = [i > 0 and bool(b.rows) and all(_NUMBER.match(row[i]) for row in b.rows)
                       for i in range(len(b.header))]
            cells = [[_md(c, True) for c in row] for row in (b.header, *b.rows)]
            out.append("\n".join(md_table(cells[0], cells[1:], numeric)))
        elif isinstance(b, Code):
            fence = _fence(b.text)
            title = f"**{_md(b.title)}**\n\n" if b.title else ""
            out.append(f"{title}{fence}{b.lang}\n{b.text}\n{fence}")
        elif isinstance(b, Image):
            out.append(f"![{_md(b.alt)}]({b.file})")
    return "\n\n".join(out) + "\n"


# ---------------------------------------------------------------- HTML
CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d2329;
       max-width: 1040px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 2px solid #d0d7de; padding-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05em; }
.banner { background: #fff3cd; border: 1px solid #e0b000; padding: .6em .9em; font-weight: 600; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; font-size: .85em; }
details { margin: .4em 0; } summary { cursor: pointer; font-weight: 600; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0; }
li { margin: .25em 0; }
"""


def _h(text: str) -> str:
    """HTML-escape ``text`` and link arXiv ids to their abstract page."""
    escaped = html.escape(str(text), quote=True)
    return _ARXIV.sub(lambda m: f'<a href="https://arxiv.org/abs/{m.group(1)}">{m.group(0)}</a>', escaped)


def render_html(blocks: Sequence[Block], title: str) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f"<title>{_h(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>"]
    for b in blocks:
        if isinstance(b, Banner):
            out.append(f'<p class="banner">{_h(b.text)}</p>')
        elif isinstance(b, Heading):
            out.append(f"<h{b.level}>{_h(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append("<p>" + (f"<strong>{_h(b.label)}:</strong> " if b.label else "") + f"{_h(b.text)}</p>")
        elif isinstance(b, Items):
            out.append("<ul>" + "".join(f"<li>{_h(item)}</li>" for item in b.items) + "</ul>")
        elif isinstance(b, Table):
            head = "" if not any(b.header) else \
                "<thead><tr>" + "".join(f"<th>{_h(h)}</th>" for h in b.header) + "</tr></thead>"
            body = "".join("<tr>" + "".join(
                f'<td class="num">{_h(c)}</td>' if i and _NUMBER.match(c) else f"<td>{_h(c)}</td>"
                for i, c in enumerate(row)) + "</tr>" for row in b.rows)
            out.append(f"<table>{head}<tbody>{body}</tbody></table>")
        elif isinstance(b, Code):
            pre = f"<pre><code>{html.escape(b.text)}</code></pre>"
            out.append(f"<details><summary>{_h(b.title)}</summary>{pre}</details>" if b.title else pre)
        elif isinstance(b, Image):
            data = base64.b64encode(b.data).decode("ascii")
            out.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(b.alt, quote=True)}">')
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- entry point
def render_plots(result: ExperimentResult) -> dict[str, bytes]:
    """The PNGs of the report: {file name: bytes}."""
    from cnnlab.experiments.plots import costs_png, curves_png

    titles = _titles(result)
    name = f"{result.experiment.name} ({result.budget.name})"
    return {CURVES: curves_png(result.outcome.runs, titles, paper_test_error=paper_test_errors(result),
                               title=f"{name}: training (dashed) and test (solid) error"),
            COSTS: costs_png(result.outcome.costs, titles, input_size=result.experiment.input_size,
                             title=f"{name}: exact cost per arm")}


def write_report(result: ExperimentResult, formats: Sequence[str] = ("md", "html")) -> list[Path]:
    """Write the reports (``md`` -> report.md, ``html`` -> report.html) and their plots (curves.png,
    costs.png) into ``result.out``, each atomically; returns the files in the order written: plots, then reports."""
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s) {', '.join(map(repr, unknown))}; allowed: "
                         f"{', '.join(FORMATS)}")
    if not formats:
        return []
    out = Path(result.out)
    out.mkdir(parents=True, exist_ok=True)
    images = render_plots(result)
    blocks = build(result, images)
    written = []
    for name, data in images.items():  # first: a report never links a PNG that is not there yet
        atomic_write(out / name, data)
        written.append(out / name)
    for fmt in dict.fromkeys(formats):
        path = out / FORMATS[fmt]
        text = render_md(blocks) if fmt == "md" else render_html(
            blocks, f"{result.experiment.name} ({result.budget.name}): {result.verdict}")
        atomic_write(path, text)
        written.append(path)
    return written
