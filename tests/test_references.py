"""Cards, the tour and the docs cite sources a user can open: papers, and docs/references.md in this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnlab.models import list_models, model_card

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = (ROOT / "docs" / "references.md").read_text()
OUTSIDE = re.compile(r"MODELS\.md|RESEARCH\.md|/work/shared|shared/reference")


def _card_text(name: str) -> str:
    card = model_card(name)
    counts = [card.reference, *card.variants.values()]
    return " ".join([card.paper, card.follows, card.differences] + [f"{c.source} {c.note}" for c in counts])


@pytest.mark.parametrize("name", list_models())
def test_each_card_cites_what_is_in_the_repository(name):
    text = _card_text(name)
    assert not OUTSIDE.search(text), f"{name}'s card cites a file that is not in the repository"
    for path in re.findall(r"\b(?:docs|tests|benchmarks|src)/[\w/.-]+\.(?:md|py)\b", text):
        assert (ROOT / path).is_file(), f"{name}'s card cites {path}, which does not exist"


@pytest.mark.parametrize("name", list_models())
def test_references_md_records_each_reference_count(name):
    counts = model_card(name).reference
    assert f"{counts.params:,}" in REFERENCES, f"docs/references.md lacks {name}'s {counts.params:,} parameters"
    if counts.macs is not None:
        assert f"{counts.macs:,}" in REFERENCES, f"docs/references.md lacks {name}'s {counts.macs:,} MACs"


def test_sources_and_docs_cite_no_file_outside_the_repository():
    offenders = []
    for folder in ("src/cnnlab", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md"):
                offenders += [f"{path.relative_to(ROOT)}:{i}" for i, line in
                              enumerate(path.read_text().splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, offenders


def test_every_paper_cited_by_a_card_is_listed_with_its_arxiv_id():
    ids = {m for name in list_models() for m in re.findall(r"arXiv:(\d{4}\.\d{4,5})", model_card(name).paper)}
    assert ids and all(f"arXiv:{i}" in REFERENCES for i in ids), ids - set(re.findall(r"\d{4}\.\d{4,5}", REFERENCES))
