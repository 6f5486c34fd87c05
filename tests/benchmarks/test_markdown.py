"""benchmarks/_markdown.py: one section of BENCHMARKS.md replaced, or one row added to its table."""

from __future__ import annotations

import pytest

DOC = "# Benchmarks\n\n## A\n\nold a\n\n## B\n\ntext\n\n| x |\n| - |\n| 1 |\n\nafter the table\n\n## C\n\nc\n"


@pytest.fixture
def md(load_script):
    return load_script("_markdown")


def test_a_section_is_replaced_and_the_others_kept(md, tmp_path):
    path = tmp_path / "B.md"
    path.write_text(DOC)
    md.write_section("## A", "## A\n\nnew a\n", path)
    assert path.read_text() == DOC.replace("old a", "new a")
    md.write_section("## C", "## C\n\nlast\n", path)  # the last section: nothing follows it
    assert path.read_text().endswith("## C\n\nlast\n") and "## B" in path.read_text()
    md.write_section("## D", "## D\n\nd\n", path)
    assert path.read_text().endswith("## C\n\nlast\n\n## D\n\nd\n")
    assert [p.name for p in tmp_path.iterdir()] == ["B.md"]  # no temporary file left


def test_a_row_goes_below_the_last_row_of_its_section(md, tmp_path):
    path = tmp_path / "B.md"
    path.write_text(DOC)
    md.append_row("## B", "unused", "| x |\n| - |", "| 2 |", path)
    assert "| 1 |\n| 2 |\n\nafter the table" in path.read_text()
    md.append_row("## A", "unused", "| y |\n| - |", "| 3 |", path)  # a section without a table gets one
    assert "## A\n\nold a\n\n| y |\n| - |\n| 3 |\n\n## B" in path.read_text()
    md.append_row("## New", "what it measures", "| z |\n| - |", "| 4 |", path)
    assert path.read_text().endswith("## C\n\nc\n\n## New\n\nwhat it measures\n\n| z |\n| - |\n| 4 |\n")
    path.write_text("## A\ntext\n## B\n")  # no blank lines at all
    md.append_row("## A", "unused", "| y |\n| - |", "| 3 |", path)
    assert path.read_text() == "## A\ntext\n\n| y |\n| - |\n| 3 |\n\n## B\n"


def test_a_missing_file_is_started(md, tmp_path):
    md.append_row("## S", "p", "| h |\n| - |", "| r |", tmp_path / "new.md")
    assert (tmp_path / "new.md").read_text() == "# Benchmarks\n\n## S\n\np\n\n| h |\n| - |\n| r |\n"
