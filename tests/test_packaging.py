"""What a user of pip, a type checker or torch.hub relies on: licence, metadata, py.typed, --version."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import cnnlab
from cnnlab.cli import main

ROOT = Path(__file__).resolve().parents[1]

tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_matches_the_metadata(project):
    assert project["project"]["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert project["project"]["license-files"] == ["LICENSE"]


def test_classifiers_and_typed_marker_ship(project):
    assert "Typing :: Typed" in project["project"]["classifiers"]
    assert (Path(cnnlab.__file__).parent / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["cnnlab"]


def test_version_matches_the_metadata(project, capsys):
    assert project["project"]["version"] == cnnlab.__version__
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"cnnlab {cnnlab.__version__}"
