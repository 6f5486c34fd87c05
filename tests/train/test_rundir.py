from __future__ import annotations

import shutil
import subprocess

import pytest

import cnnlab.train.rundir as rundir

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _repo(path):
    path.mkdir(parents=True, exist_ok=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=path, check=True)
    (path / "f").write_text("x")
    subprocess.run([*git, "add", "f"], cwd=path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "c"], cwd=path, check=True)
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=path, capture_output=True, text=True,
                          check=True).stdout.strip()


@needs_git
def test_source_commit_of_a_clone_laid_out_as_cnnlab(tmp_path, monkeypatch):
    commit = _repo(tmp_path / "clone")
    (tmp_path / "clone" / "src" / "cnnlab" / "train").mkdir(parents=True)
    monkeypatch.setattr(rundir, "__file__", str(tmp_path / "clone" / "src" / "cnnlab" / "train" / "rundir.py"))
    assert rundir.source_commit() == commit


@needs_git
def test_source_commit_ignores_another_repository_around_an_install(tmp_path, monkeypatch):
    _repo(tmp_path / "project")  # e.g. a virtual environment inside the user's own repository
    pkg = tmp_path / "project" / ".venv" / "lib" / "site-packages" / "cnnlab" / "train"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(rundir, "__file__", str(pkg / "rundir.py"))
    assert rundir.source_commit() is None


@pytest.mark.parametrize("text, finished", [(None, False), ('{"finished": true}', True),
                                             ('{"finished": false}', False), ("{not json", False), ("[1]", False)])
def test_run_finished_believes_only_a_readable_summary(tmp_path, text, finished):
    if text is not None:
        (tmp_path / "summary.json").write_text(text)
    assert rundir.run_finished(tmp_path) is finished
