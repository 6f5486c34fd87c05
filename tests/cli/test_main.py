"""The cnnlab command: help, python -m, one-line errors, the offline tour."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cnnlab.cli import CLIError, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "tour" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: cnnlab" in capsys.readouterr().out


def test_python_dash_m_works():
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "--version"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("cnnlab ")


def test_errors_become_one_line_and_exit_2(monkeypatch, capsys):
    import cnnlab.cli.tour as tour

    def broken(args):
        raise CLIError("the thing was wrong; do this instead")

    monkeypatch.setattr(tour, "run_tour", broken)
    assert main(["tour"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "cnnlab tour: error: the thing was wrong; do this instead"


def test_tour_runs_offline_and_shows_measured_savings(capsys):
    assert main(["tour"]) == 0
    out = capsys.readouterr().out
    # 5x5 -> two 3x3 at 64 channels: 102,400 -> 73,728 weights (18/25)
    assert "102,400" in out and "73,728" in out and "0.720" in out
    # VGG-16's fc6 = 25088 x 4096 + 4096, counted by the analyser
    assert f"first fully connected layer alone has {25088 * 4096 + 4096:,}" in out
    # every zoo row shows a built count equal to its reference
    zoo = out.split("2. The model zoo")[1].split("3. Costs")[0].splitlines()[3:]
    rows = [line.split() for line in zoo if line.strip()]
    assert len(rows) >= 5 and all(r[2] == r[3] for r in rows)
    assert "receptive field 651x651 -> 651x651" in out
    assert out.rstrip().splitlines()[-1].startswith("cnnlab experiment list")  # the tour ends at the experiments
