"""Experiments: the classic papers' design claims, re-run with one command and reported beside the paper.

Each module in this package (other than the infrastructure) declares one ``EXPERIMENT``: its arms (zoo
networks and training overrides), budgets (``smoke`` for tests, ``quick`` for a 2-core CPU, ``paper`` for the
paper's recipe), the paper's numbers and a pure analysis function. ``run(name, budget=...)`` trains and decides;
``write_reports(out)`` (re)writes the Markdown and HTML reports of a finished experiment directory.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from cnnlab.experiments.core import (
    Analysis,
    Arm,
    Budget,
    DataSource,
    Experiment,
    ExperimentResult,
    Outcome,
    Reference,
    RunRecord,
    load_result,
    read_record,
    run_experiment,
)
from cnnlab.experiments.report import write_report
from cnnlab.experiments.verdict import NO_VERDICT, NOT_REPRODUCED, NOT_RESOLVED, REPRODUCED, Comparison

__all__ = ["Analysis", "Arm", "Budget", "Comparison", "DataSource", "Experiment", "ExperimentResult",
           "NOT_REPRODUCED", "NOT_RESOLVED", "NO_VERDICT", "Outcome", "REPRODUCED", "Reference", "RunRecord",
           "get_experiment", "list_experiments", "load_result", "run", "write_reports"]

_INFRASTRUCTURE = {"budgets", "core", "verdict", "report", "plots"}
EXPERIMENTS: dict[str, Experiment] = {}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        _exp = importlib.import_module(f"{__name__}.{_info.name}").EXPERIMENT
        if _exp.name in EXPERIMENTS:
            raise RuntimeError(f"experiment {_exp.name!r} is declared twice")
        EXPERIMENTS[_exp.name] = _exp

# the order of the issue and of the papers: the ResNet claims, then the Inception ones
_ORDER = ("degradation", "identity_mappings", "factorization", "bottleneck_1x1", "gap_vs_fc", "aux_classifiers",
          "inception_residual")


def list_experiments() -> list[str]:
    """Experiment names, in the order the report index shows them."""
    return sorted(EXPERIMENTS, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))


def get_experiment(name: str) -> Experiment:
    """The declared experiment ``name``; a KeyError naming the known ones otherwise."""
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment {name!r}; known: {', '.join(list_experiments())} "
                       f"(cnnlab experiment list)")
    return EXPERIMENTS[name]


def run(name: str, budget: str = "quick", out: str | Path | None = None, *, report_formats: tuple[str, ...] = (
        "md", "html"), **kwargs: Any) -> ExperimentResult:
    """Run experiment ``name`` at ``budget`` into ``out`` and write its reports; returns the result with the verdict.

    Keywords go to ``run_experiment``: ``source`` (a DataSource), ``seeds``, ``resume``, ``command``, ``progress``,
    ``bar``.
    """
    result = run_experiment(get_experiment(name), budget, out, **kwargs)
    if report_formats and result.is_main:
        result.reports = write_report(result, report_formats)
    return result


def write_reports(out: str | Path, formats: tuple[str, ...] = ("md", "html")) -> list[Path]:
    """(Re)write the reports of the finished experiment directory ``out``; returns the files written."""
    name = read_record(out).get("experiment")
    return write_report(load_result(get_experiment(str(name)), out), formats)
