"""What a run prints (start line, epoch lines, a bar only on a terminal, nothing when quiet) and the logs that
standard tools read (metrics.csv beside metrics.jsonl, TensorBoard event files when asked and installed)."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.data import ArrayDataset
from cnnlab.train import TrainConfig, Trainer, evaluate_run
from cnnlab.train.progress import CSV_COLUMNS, Progress, epoch_line, precision_note

pytestmark = pytest.mark.usefixtures("one_thread")

EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+) \| train loss \d+\.\d{4} acc \d+\.\d\d% \| test loss \d+\.\d{4} acc "
                        r"\d+\.\d\d% \| lr [\d.e-]+ \| [\d,]+ img/s \| elapsed \d+:\d\d \| ETA \d+:\d\d$")


def _data(n: int = 48) -> ArrayDataset:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, n)
    return ArrayDataset(rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), y, ("a", "b", "c", "d"))


class Tiny(nn.Module):
    """3*6*9 + 6 conv, 2*6 BN, 6*4 + 4 fc = 208 parameters; 8*8 * 6 * 3*9 + 6*4 = 10,392 MACs per 8x8 image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(model="tiny", data="npz", epochs=2, batch_size=16, precision="fp32", lr=0.05), **kw})


def _trainer(cfg, out, resume=False, progress=True):
    torch.manual_seed(0)
    return Trainer(cfg, out, resume=resume, model=Tiny(), train_data=_data(), test_data=_data(), progress=progress)


def _native_bf16(monkeypatch, native: bool) -> None:
    """The CPU capability probe (AVX512-BF16 / AMX) answers ``native``, whatever this machine has."""
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.setattr(torch.cpu, name, lambda native=native: native, raising=False)


# ---------------------------------------------------------------- what a run prints
@pytest.mark.parametrize("native, used, reason", [(True, "bfloat16", "bf16: native on this CPU"),
                                                  (False, "fp32", "fp32: no native bf16 on this CPU")])
def test_the_start_line_says_what_will_happen(tmp_path, capsys, monkeypatch, native, used, reason):
    _native_bf16(monkeypatch, native)
    _trainer(_cfg(precision="auto", epochs=4, milestones=(0.5, 0.75)), tmp_path / "run").fit(until_step=1)
    start = capsys.readouterr().err.splitlines()[0]
    assert start == (f"train {tmp_path / 'run'} | tiny (208 params, 10.4k MACs/image) | cpu, {reason} | 12 steps "
                     f"(4 epochs of 3) | schedule step: lr 0.05, x0.1 at steps 6, 9 (50%, 75% of 12)")
    environment = json.loads((tmp_path / "run" / "config.json").read_text())["environment"]
    assert environment["autocast"] == used  # the line names the precision the run really uses


def test_precision_reasons():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert precision_note("fp32", None, cpu, True) == "fp32: asked for"
    assert precision_note("bf16", torch.bfloat16, cpu, False) == (
        "bf16: asked for (emulated, slower than fp32 on this CPU)")
    assert precision_note("bf16", torch.bfloat16, cpu, True) == "bf16: asked for (native on this CPU)"
    assert precision_note("auto", torch.bfloat16, gpu, False) == "bf16: supported by this GPU"
    assert precision_note("auto", None, gpu, False) == "fp32: no bf16 on this GPU"


def test_one_line_per_epoch_and_no_redraws_off_a_terminal(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CI", raising=False)  # the library reads no environment: captured stderr alone turns it off
    _trainer(_cfg(epochs=3), tmp_path / "run").fit()
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err  # no bar redraws, no cursor moves: a log file reads cleanly
    lines = err.splitlines()
    assert len(lines) == 4 and lines[0].startswith(f"train {tmp_path / 'run'} | tiny")
    records = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    for line, record in zip(lines[1:], epochs):
        assert EPOCH_LINE.match(line), line
        assert line.startswith(f"epoch {record['epoch']}/3 | train loss {record['train_loss']:.4f} "
                               f"acc {record['train_acc']:.2%} | test loss {record['test_loss']:.4f}")


def test_quiet_prints_nothing(tmp_path, capsys):
    _trainer(_cfg(), tmp_path / "run", progress=False).fit()
    assert capsys.readouterr().err == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("bar", [None, False])
def test_a_bar_only_on_a_terminal_and_lines_above_it(monkeypatch, bar):
    monkeypatch.setenv("CI", "true")  # read by the CLI alone (bar=False there), not by the library
    stream = _Terminal()
    progress = Progress(6, 0, stream=stream, bar=bar)  # None: a bar because the stream is a terminal
    progress.line("train run | ...")
    for _ in range(3):
        progress.set_postfix(loss="1.000")
        progress.update()
    record = {"epoch": 1, "step": 3, "train_loss": 1.0, "train_acc": 0.5, "lr": 0.1, "images_per_s": 1234.5}
    progress.epoch(record, 2, 3, 6)
    progress.close()
    text = stream.getvalue()
    assert ("\r" in text) == (bar is None)  # tqdm redraws with carriage returns
    lines = [line for chunk in text.split("\r") for line in chunk.splitlines()]
    assert "train run | ..." in lines and any(line.startswith("epoch 1/2 | train loss 1.0000 acc 50.00% | lr 0.1 "
                                                              "| 1,234 img/s | elapsed") for line in lines)


def test_epoch_line_without_evaluation_and_long_runs():
    record = {"epoch": 3, "step": 30, "train_loss": 0.25, "train_acc": 0.9, "lr": 0.001, "images_per_s": 99.6}
    line = epoch_line(record, 164, elapsed=3725.0, eta=None)
    assert line == "epoch 3/164 | train loss 0.2500 acc 90.00% | lr 0.001 | 100 img/s | elapsed 1:02:05 | ETA ?"
    assert epoch_line({**record, "test_loss": 0.5, "test_acc": 0.8}, 164, 59.6, 61.0).endswith(
        "test loss 0.5000 acc 80.00% | lr 0.001 | 100 img/s | elapsed 1:00 | ETA 1:01")


def test_the_cli_prints_lines_in_ci_and_nothing_with_quiet(tmp_path, capsys, monkeypatch):
    (tmp_path / "tinyprogress_cli.py").write_text(
        "from torch import nn\n\ndef tiny(num_classes=4):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),\n"
        "                         nn.Linear(4, num_classes))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    data = _data(32)
    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", x=data.x, y=data.y, classes=np.array(data.classes))
    args = ["train", "tinyprogress_cli:tiny", "--data", "npz", "--train-file", "train.npz", "--test-file",
            "test.npz", "--batch-size", "16", "--epochs", "2", "--set", "precision=fp32"]
    assert main(args + ["--out", "loud"]) == 0
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(" | ")[0] for line in err.splitlines()] == ["train loud", "epoch 1/2", "epoch 2/2"]
    assert main(args + ["--out", "quiet", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as when the package is not installed
    assert main(args + ["--out", "tb", "--quiet", "--tensorboard"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "cnnlab train: tensorboard=true but the tensorboard package is not installed: no event files are written "
        "(pip install 'cnnlab[tensorboard]' to enable them)"]
    assert json.loads((tmp_path / "tb" / "config.json").read_text())["config"]["tensorboard"] is True
    sys.modules.pop("tinyprogress_cli", None)


# ---------------------------------------------------------------- metrics.csv
def _csv(run) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _epoch_records(run) -> list[dict]:
    records = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["kind"] == "epoch"]


def test_metrics_csv_has_a_row_per_epoch(tmp_path):
    run = tmp_path / "run"
    _trainer(_cfg(epochs=3, eval_every=2), run, progress=False).fit()
    assert (run / "metrics.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    rows, records = _csv(run), _epoch_records(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and [int(r["step"]) for r in rows] == [3, 6, 9]
    for row, record in zip(rows, records):
        assert float(row["train_loss"]) == record["train_loss"] and float(row["lr"]) == record["lr"]
    assert rows[0]["test_acc"] == "" and float(rows[1]["test_acc"]) == records[1]["test_acc"]  # epoch 1: no eval
    assert records[1]["test_top5"] is None and rows[1]["test_top5"] == ""  # 4 classes: no top-5


def test_epoch_records_hold_the_test_top5_with_five_classes_or_more(tmp_path):
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (48, 8, 8, 3), dtype=np.uint8), rng.integers(0, 6, 48), tuple("abcdef"))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 6))
    run = tmp_path / "run"
    Trainer(_cfg(), run, model=net, train_data=data, test_data=data, progress=False).fit()
    records = _epoch_records(run)
    assert records[-1]["test_top5"] == evaluate_run(run, "last", test_data=data, model=net)["top5_accuracy"]
    assert all(r["test_acc"] <= r["test_top5"] <= 1 for r in records)
    assert [float(r["test_top5"]) for r in _csv(run)] == [r["test_top5"] for r in records]


def test_metrics_csv_follows_the_jsonl_on_resume(tmp_path):
    run = tmp_path / "run"
    _trainer(_cfg(epochs=3), run, progress=False).fit(until_step=4)  # checkpoint at step 4, in epoch 2
    # a run killed after logging epoch 2 but before checkpointing it: both files hold a row past step 4
    stale = {"kind": "epoch", "step": 6, "epoch": 2, "train_loss": 9.0, "train_acc": 0.0, "lr": 0.05,
             "images_per_s": 1.0}
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(stale) + "\n{\"kind\": \"st")  # and a half-written last line
    with open(run / "metrics.csv", "a") as f:
        f.write("2,6,9.0,0.0,,,0.05,1.0\n2,")
    _trainer(_cfg(epochs=3), run, resume=True, progress=False).fit()
    rows = _csv(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] and "9.0" not in [r["train_loss"] for r in rows]
    assert [float(r["train_loss"]) for r in rows] == [r["train_loss"] for r in _epoch_records(run)]
    assert (run / "metrics.csv").read_text().count("epoch,step") == 1  # the header once


def test_a_run_logged_before_the_csv_existed_gains_one_on_resume(tmp_path):
    run = tmp_path / "run"
    _trainer(_cfg(epochs=3), run, progress=False).fit(until_step=3)
    (run / "metrics.csv").unlink()
    _trainer(_cfg(epochs=3), run, resume=True, progress=False).fit()
    assert [int(r["epoch"]) for r in _csv(run)] == [1, 2, 3]


def test_a_csv_written_before_test_top5_gains_the_column_on_resume(tmp_path):
    run = tmp_path / "run"
    _trainer(_cfg(epochs=3), run, progress=False).fit(until_step=3)
    old = [c for c in CSV_COLUMNS if c != "test_top5"]
    rows = [{c: r[c] for c in old} for r in _csv(run)]
    with open(run / "metrics.csv", "w", newline="") as f:  # the columns of a run logged before test_top5
        writer = csv.DictWriter(f, old, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _trainer(_cfg(epochs=3), run, resume=True, progress=False).fit()
    assert (run / "metrics.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert [{c: r[c] for c in old} for r in _csv(run)][:1] == rows and len(_csv(run)) == 3


# ---------------------------------------------------------------- TensorBoard
def test_tensorboard_is_off_cleanly_when_not_installed(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import now fails, as when missing
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        summary = _trainer(_cfg(tensorboard=True), tmp_path / "run", progress=False).fit()
    assert summary["finished"] and not (tmp_path / "run" / "tensorboard").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "tensorboard package is not installed" in warnings[0] and "pip install 'cnnlab[tensorboard]'" in warnings[0]


def test_tensorboard_off_by_default(tmp_path):
    _trainer(_cfg(), tmp_path / "run", progress=False).fit()
    assert not (tmp_path / "run" / "tensorboard").exists()


def test_tensorboard_event_files_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    _trainer(_cfg(epochs=2, tensorboard=True), run, progress=False).fit(until_step=4)
    with SummaryWriter(str(run / "tensorboard")) as killed:  # events a killed run logged past its checkpoint
        killed.add_scalar("train/loss", 99.0, global_step=5)
    _trainer(_cfg(epochs=2, tensorboard=True), run, resume=True, progress=False).fit()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]  # step 5 once: the resumed one
    assert 99.0 not in [e.value for e in events.Scalars("train/loss")]
    assert [e.step for e in events.Scalars("test/acc")] == [3, 6]
    test_acc = [r["test_acc"] for r in _epoch_records(run)]
    assert [e.value for e in events.Scalars("test/acc")] == pytest.approx(test_acc)
