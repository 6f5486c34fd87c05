"""The benchmark scripts are files in benchmarks/, not a package: tests load them by path."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def load_script(monkeypatch) -> Callable[[str], ModuleType]:
    """``load_script("bench_train")``: benchmarks/bench_train.py as a module, for the test's duration."""

    def load(name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their siblings (_markdown, _rounds)
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
        return module

    return load
