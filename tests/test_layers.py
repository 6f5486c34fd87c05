"""The architecture of DESIGN.md, enforced: each layer imports only from the layers before it, and no source file
is over 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "cnnlab"
FOUNDATION = {"_gc", "_io", "_text", "registry"}
# blocks -> models -> analysis / design -> data -> train -> experiments -> cli
ALLOWED = {
    "blocks": {"blocks"},
    "models": {"blocks", "models"},
    "analysis": {"blocks", "models", "analysis"},
    "design": {"blocks", "models", "analysis", "design"},
    "data": {"data"},
    # train may read costs (its start line prints params/MACs): analysis comes before train in the order above
    "train": {"blocks", "models", "analysis", "data", "train"},
    "experiments": {"blocks", "models", "analysis", "design", "data", "train", "experiments"},
}


def cnnlab_imports(path: Path) -> set[str]:
    """Top-level cnnlab subpackages that a file imports (absolute imports)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name.split(".")[1] for name in names if name.startswith("cnnlab.")}
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_earlier_layers(layer):
    wrong = {
        str(path.relative_to(SRC)): sorted(cnnlab_imports(path) - ALLOWED[layer] - FOUNDATION)
        for path in (SRC / layer).rglob("*.py")
    }
    assert not {k: v for k, v in wrong.items() if v}, f"{layer} imports a later layer: {wrong}"


def test_the_check_sees_imports():
    assert cnnlab_imports(SRC / "train" / "runs.py") >= {"data", "models"}


def test_no_source_file_is_over_500_lines():
    # docs/architecture.md's size rule (issue 14)
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these files (over 500 lines): {long}"
