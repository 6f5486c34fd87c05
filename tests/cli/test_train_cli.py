"""``cnnlab train`` / ``cnnlab eval``: runs, bad input (one line, exit 2, run data intact), signals, SIGKILL."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.train import load_checkpoint

TINY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes=4, nan_after=None, in_channels=3, scale=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, num_classes)
        self.nan_after, self.calls = nan_after, 0
        self.scale = scale

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        out = self.fc(h) * self.scale
        if self.training and self.nan_after is not None:
            self.calls += 1
            if self.calls > self.nan_after:
                out = out * float("nan")
        return out


def tiny(num_classes=4, **options):
    return Tiny(num_classes, **options)
'''


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def work(tmp_path, monkeypatch):
    """tmp_path with tinymodel_cli.py importable and train.npz / test.npz written."""
    (tmp_path / "tinymodel_cli.py").write_text(TINY)
    monkeypatch.syspath_prepend(str(tmp_path))
    rng = np.random.default_rng(0)
    for name, n in (("train", 64), ("test", 32)):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
        np.savez(tmp_path / f"{name}.npz", x=x, y=y, classes=np.array(["a", "b", "c", "d"]))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    return tmp_path


def _train_args(out: str, *extra: str) -> list[str]:
    return ["train", "tinymodel_cli:tiny", "--data", "npz", "--train-file", "train.npz", "--test-file", "test.npz",
            "--out", out, "--batch-size", "16", "--set", "precision=fp32", "--quiet", *extra]


def _one_line_error(capsys, argv: list[str], pattern: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and pattern in err, err
    return err


def test_train_then_eval(work, capsys):
    assert main(_train_args("run", "--epochs", "2", "--lr", "0.05", "--set", "schedule=cosine")) == 0
    out = capsys.readouterr().out
    assert "run: 8 steps, test accuracy" in out
    config = json.loads((work / "run" / "config.json").read_text())["config"]
    assert config["lr"] == 0.05 and config["schedule"] == "cosine" and config["batch_size"] == 16
    assert main(["eval", "run", "--model", "tinymodel_cli:tiny"]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and "confusion matrix" in text and "test-time augmentation" not in text
    assert main(["eval", "run", "--json", "--trust-run-code"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert np.array(result["confusion"]).sum() == 32 and result["test_set"] == "test.npz" and result["tta"] is None
    assert main(["eval", "run", "--json", "--trust-run-code", "--tta", "none"]) == 0  # the run's own: none
    assert json.loads(capsys.readouterr().out)["loss"] == result["loss"]
    assert main(["eval", "run", "--json", "--trust-run-code", "--tta", "flip"]) == 0
    flipped = json.loads(capsys.readouterr().out)
    assert flipped["loss"] != result["loss"] and flipped["tta"] == "flip"
    assert main(["eval", "run", "--trust-run-code", "--tta", "flip"]) == 0
    assert "test.npz, test-time augmentation flip" in capsys.readouterr().out.splitlines()[0]
    # another test file of the same format: 8 images, all of class "c" -> one confusion row, same accuracy
    with np.load(work / "test.npz") as f:
        np.savez(work / "other.npz", x=f["x"][:8], y=np.full(8, 2), classes=f["classes"])
    assert main(["eval", "run", "--json", "--test-file", "other.npz", "--trust-run-code"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["test_set"] == "other.npz" and np.array(other["confusion"]).sum(1).tolist() == [0, 0, 8, 0]
    assert other["accuracy"] == other["confusion"][2][2] / 8
    _one_line_error(capsys, ["eval", "run", "--test-file", "missing.npz", "--trust-run-code"], "missing.npz")
    # --resume with a longer run continues from step 8
    assert main(["train", "--resume", "run", "--epochs", "3", "--quiet", "--trust-run-code"]) == 0
    assert load_checkpoint(work / "run" / "checkpoints" / "last.safetensors")[1]["step"] == 12
    err = capsys.readouterr().err
    assert "resuming run at step 8 with epochs 2 -> 3" in err and "cosine schedule keeps the 8 steps" in err
    _one_line_error(capsys, ["train", "--resume", "run", "--lr", "0.5", "--trust-run-code"],
                    "cannot change lr when resuming")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("ci", [None, "true"])
def test_no_progress_bar_under_ci_even_on_a_terminal(work, monkeypatch, ci):
    # CI logs keep every redraw, even on a pseudo-terminal: the CLI reads CI (the library does not) and asks for
    # the start and epoch lines without a bar
    if ci is None:
        monkeypatch.delenv("CI")
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([a for a in _train_args("run", "--epochs", "1") if a != "--quiet"]) == 0
    text = terminal.getvalue()
    assert ("\r" in text) == (ci is None)  # tqdm redraws with carriage returns
    lines = [line for chunk in text.split("\r") for line in chunk.splitlines()]
    assert any(line.startswith("train run | ") for line in lines) and any(line.startswith("epoch 1/1 | ")
                                                                          for line in lines)


def test_config_file_and_overrides(work, capsys):
    (work / "c.yaml").write_text("epochs: 1\nlr: 0.2\n")
    assert main(_train_args("r", "--config", "c.yaml", "--set", "lr=0.3")) == 0
    assert json.loads((work / "r" / "config.json").read_text())["config"]["lr"] == 0.3
    _one_line_error(capsys, _train_args("r2", "--set", "learning_rate=0.1"), "unknown config key 'learning_rate'")
    _one_line_error(capsys, _train_args("r3", "--set", "epochs=two"), "'epochs' expects int")
    assert not (work / "r2").exists() and not (work / "r3").exists()


def test_bad_data(work, capsys):
    _one_line_error(capsys, _train_args("a") + ["--train-file", "missing.npz"], "missing.npz does not exist")
    (work / "junk.npz").write_bytes(b"junk")
    _one_line_error(capsys, _train_args("b") + ["--train-file", "junk.npz"], "junk.npz")
    rng = np.random.default_rng(1)
    np.savez(work / "bad_labels.npz", x=rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), y=np.arange(16),
             classes=np.array(["a", "b", "c", "d"]))
    _one_line_error(capsys, _train_args("c") + ["--train-file", "bad_labels.npz", "--set", "num_classes=4"],
                    "outside 0..3")
    np.savez(work / "grey.npz", x=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8), y=np.arange(16) % 4)
    _one_line_error(capsys, _train_args("d") + ["--train-file", "grey.npz", "--test-file", "grey.npz"],
                    "cannot take the 1x8x8 images")
    assert not any((work / d).exists() for d in "abcd")  # failed set-ups leave no run directories
    (work / "file").write_text("")
    _one_line_error(capsys, _train_args("file/run"), "cannot write to run directory")
    _one_line_error(capsys, ["train", "resnet20", "--data", "cifar10", "--data-dir", str(work / "nodata"),
                             "--set", "download=false", "--out", "e"], "cifar-10-python.tar.gz")


def test_zoo_model_rejects_grey_images(work, capsys):
    rng = np.random.default_rng(2)
    np.savez(work / "grey.npz", x=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8), y=np.arange(16) % 4)
    _one_line_error(capsys, ["train", "resnet20", "--data", "npz", "--train-file", "grey.npz", "--test-file",
                             "grey.npz", "--out", "z"], "cannot take the 1x8x8 images")


def test_nan_loss_keeps_last_good_checkpoint(work, capsys):
    err = _one_line_error(capsys, _train_args("n", "--epochs", "3", "--set", "checkpoint_every=1", "--set",
                                              "model_options={'nan_after': 5}"), "at step 6")
    assert "loss became nan" in err
    tensors, meta = load_checkpoint(work / "n" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 5 and all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))
    lines = (work / "n" / "metrics.jsonl").read_text().splitlines()
    assert all(json.loads(line)["step"] <= 5 for line in lines)


def test_diverged_run_is_recovered_with_a_recorded_lr_change(work, capsys):
    # lr 1e38 after 3 warm-up steps overflows the weights at step 4 while the loss is still finite
    diverge = ["--epochs", "2", "--lr", "1e38", "--set", "warmup_steps=3", "--set", "warmup_lr=0.05", "--set",
               "checkpoint_every=1", "--set", "model_options={'scale': 100.0}"]
    _one_line_error(capsys, _train_args("d", *diverge), "holds NaN or infinity after step 4; training stopped "
                    "and nothing non-finite was saved; the last finite state is in d/checkpoints: last.safetensors "
                    "(step 3)")
    assert main(["eval", "d", "--checkpoint", "last", "--trust-run-code"]) == 0  # finite, so it evaluates
    capsys.readouterr()
    resume = ["train", "--resume", "d", "--lr", "0.05", "--trust-run-code"]
    _one_line_error(capsys, resume, "--allow-change lr")
    assert main(resume + ["--allow-change", "lr"]) == 0
    assert "resuming d at step 3 with lr 1e+38 -> 0.05 (recorded in config.json)" in capsys.readouterr().err
    record = json.loads((work / "d" / "config.json").read_text())
    assert record["config"]["lr"] == 1e38 and record["changes"] == [{"step": 3, "key": "lr", "old": 1e38,
                                                                      "new": 0.05}]
    assert json.loads((work / "d" / "summary.json").read_text())["finished"]
    # finished: resuming changes nothing and says how to extend it
    files = {p: p.read_bytes() for p in (work / "d").rglob("*") if p.is_file()}
    _one_line_error(capsys, ["train", "--resume", "d", "--trust-run-code"], "d is finished (8 of 8 steps)")
    assert {p: p.read_bytes() for p in (work / "d").rglob("*") if p.is_file()} == files


def test_a_run_killed_during_set_up_restarts_by_the_same_command(work, capsys):
    (work / "k" / "checkpoints").mkdir(parents=True)  # what a kill before config.json leaves
    _one_line_error(capsys, ["train", "--resume", "k"], "k has no config.json: its run stopped before set-up "
                    "finished; start it afresh with the command that started it")
    assert main(_train_args("k", "--epochs", "1")) == 0
    assert "k has no config.json: its run stopped before set-up finished; starting it afresh" in \
        capsys.readouterr().err
    (work / "k2" / "checkpoints").mkdir(parents=True)
    assert main(_train_args("k2", "--epochs", "1", "--resume", "k2")) == 0  # --resume with the arguments: same
    assert "starting it afresh" in capsys.readouterr().err


def _env(work: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1", "CI": "true"}


def _spawn_cmd(work: Path, out: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "cnnlab", "train", "tinymodel_cli:tiny", "--data", "npz", "--train-file",
            "train.npz", "--test-file", "test.npz", "--out", out, "--batch-size", "16", "--set", "precision=fp32",
            "--set", "checkpoint_every=1", *extra]


def _spawn(work: Path, out: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(_spawn_cmd(work, out, *extra), cwd=work, env=_env(work), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        metrics = run / "metrics.jsonl"
        if metrics.exists() and sum(1 for _ in metrics.open()) >= step:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    raise AssertionError("the training process made no progress")


@pytest.mark.slow
def test_sigterm_saves_then_exits(work):
    proc = _spawn(work, "t", "--max-steps", "100000", "--epochs", "100000")
    _wait_for_step(work / "t", 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM at step" in err and "--resume" in err
    step = load_checkpoint(work / "t" / "checkpoints" / "last.safetensors")[1]["step"]
    assert step >= 3 and f"step {step}:" in err


@pytest.mark.slow
def test_sigkill_then_resume_equals_straight_run(work):
    steps = ["--max-steps", "30", "--epochs", "20"]
    straight = _spawn(work, "straight", *steps)
    killed = _spawn(work, "killed", *steps)
    _wait_for_step(work / "killed", 7, killed)
    killed.kill()  # SIGKILL: no handler runs, whatever was being written stays half-written
    killed.communicate()
    assert straight.wait(timeout=120) == 0, straight.communicate()
    resumed = subprocess.run([sys.executable, "-m", "cnnlab", "train", "--resume", "killed", "--quiet",
                             "--trust-run-code"], cwd=work,
                             env={**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"},
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    a, meta_a = load_checkpoint(work / "straight" / "checkpoints" / "last.safetensors")
    b, meta_b = load_checkpoint(work / "killed" / "checkpoints" / "last.safetensors")
    assert meta_a["step"] == meta_b["step"] == 30
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model/", "optim/")))


def _metrics(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "images_per_s"} for line in lines]


@pytest.mark.slow
def test_ten_random_sigkills_lose_nothing(work):
    """Kill a real training process 10 times (half of them the moment a checkpoint's temp file shows, i.e.
    during its write; the others at a random moment), resume it with the same command each time: the end
    equals a straight run bitwise, and no temp file or lock is left."""
    steps = ["--max-steps", "80", "--epochs", "20"]
    straight = _spawn(work, "straight", *steps)
    rng = np.random.default_rng(11)
    run, kills, during_write = work / "crash", 0, 0
    while kills < 10:
        proc = _spawn(work, "crash", *steps, *(["--resume", "crash"] if kills else []))
        lines = len(_metrics(run)) if (run / "metrics.jsonl").exists() else 0
        _wait_for_step(run, lines + 1, proc)
        if kills % 2:
            deadline = time.time() + 0.5
            while time.time() < deadline and not list((run / "checkpoints").glob(".*.tmp")):
                time.sleep(0.0005)
            during_write += time.time() < deadline
        else:
            time.sleep(rng.uniform(0, 0.03))
        assert proc.poll() is None, "the run finished before it could be killed"
        proc.kill()
        proc.communicate()
        kills += 1
    final = subprocess.run(_spawn_cmd(work, "crash", *steps, "--resume", "crash"), cwd=work, env=_env(work),
                           capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert straight.wait(timeout=120) == 0, straight.communicate()
    assert during_write >= 1  # at least one kill landed while a checkpoint was being written
    a, meta_a = load_checkpoint(work / "straight" / "checkpoints" / "last.safetensors")
    b, meta_b = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta_a["step"] == meta_b["step"] == 80
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("model/", "optim/")))
    assert _metrics(work / "straight") == _metrics(run)
    assert not list(run.rglob("*.tmp")) and not (run / "train.lock").exists()
