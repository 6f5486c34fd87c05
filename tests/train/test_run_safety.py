"""Never lose or poison a result (issue 11): nothing non-finite is saved or evaluated, a diverged run is
recovered with a recorded lr change, a finished run is never modified, the schedule is fixed at the start,
one process per run directory, leftovers of interrupted writes go, a corrupt last checkpoint falls back."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from cnnlab.data import ArrayDataset
from cnnlab.train import (
    NonFiniteLossError,
    RunFinishedError,
    RunLockedError,
    TrainConfig,
    Trainer,
    evaluate_run,
    load_checkpoint,
    lr_at,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 48, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.integers(0, 80, (n, 8, 8, 3), dtype=np.uint8)
    x[np.arange(n), :, :, y % 3] += 150
    return ArrayDataset(x, y, ("a", "b", "c", "d"))


class Net(nn.Module):
    """conv, BN, global pool, fc; ``scale`` multiplies the logits (so a huge lr overflows the weights)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)
        self.scale = scale

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3))) * self.scale


def _cfg(**kw) -> TrainConfig:
    base = dict(model="net", data="npz", epochs=2, batch_size=16, precision="fp32", lr=0.05, seed=3,
                crop_padding=0, hflip=False)
    return TrainConfig(**{**base, **kw})


def _trainer(cfg: TrainConfig, out: Path, scale: float = 1.0, **kw) -> Trainer:
    torch.manual_seed(0)
    data = _data()
    return Trainer(cfg, out, model=Net(scale), train_data=data, test_data=data, progress=False, **kw)


def _files(run: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(run)): (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}


def _lrs(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["lr"] for r in lines if r["kind"] == "step"}


# ---------------------------------------------------------------- NaN / infinity
# step 4 overflows the weights; the lr stays constant after the warm-up (the default step schedule would decay
# it at 50% and 75% of these 6 steps)
DIVERGES = dict(lr=1e38, warmup_steps=3, warmup_lr=0.05, checkpoint_every=1, schedule="constant")


def test_weights_that_overflow_are_never_saved_and_the_run_recovers(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(NonFiniteLossError) as err:
        _trainer(_cfg(**DIVERGES), run, scale=100.0).fit()
    message = str(err.value)
    # the loss at step 4 was still finite: the weights went first, and the save refused them
    assert "after step 4" in message and "last.safetensors (step 3)" in message and "--allow-change lr" in message
    assert "\n" not in message
    tensors, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta["step"] == 3 and all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert evaluate_run(run, "last", test_data=_data(), model=Net(100.0))["images"] == 48  # usable
    # the lr cannot change unasked; asked, the change and its step are recorded and config.json keeps the original
    with pytest.raises(ValueError, match="cannot change lr when resuming .* --allow-change lr"):
        _trainer(_cfg(**{**DIVERGES, "lr": 0.05}), run, scale=100.0, resume=True)
    summary = _trainer(_cfg(**{**DIVERGES, "lr": 0.05}), run, scale=100.0, resume=True, allow_changes=["lr"]).fit()
    assert summary["finished"] and summary["step"] == 6
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["lr"] == 1e38
    assert record["changes"] == [{"step": 3, "key": "lr", "old": 1e38, "new": 0.05}]
    assert [_lrs(run)[s] for s in (4, 5, 6)] == [0.05] * 3
    # the next resume starts from the changed config: nothing to change, and the finished run is refused
    with pytest.raises(RunFinishedError):
        _trainer(_cfg(**{**DIVERGES, "lr": 0.05}), run, scale=100.0, resume=True)


def test_optimiser_state_and_buffers_are_checked_before_saving(tmp_path):
    t = _trainer(_cfg(checkpoint_every=1), tmp_path / "r")
    t.fit(until_step=2)
    before = (tmp_path / "r" / "checkpoints" / "last.safetensors").read_bytes()
    state = t.optimizer.state[t.model.conv.weight]
    state["momentum_buffer"][0, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteLossError, match="optimiser momentum_buffer of conv.weight holds NaN or infinity"):
        t._save("last", 0)
    state["momentum_buffer"].zero_()
    t.model.bn.running_var[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="bn.running_var .*last.safetensors \\(step 2\\)"):
        t._save("best", 0)
    assert (tmp_path / "r" / "checkpoints" / "last.safetensors").read_bytes() == before
    assert not (tmp_path / "r" / "checkpoints" / "best.safetensors").exists()


def test_the_weight_average_is_checked_too(tmp_path):
    t = _trainer(_cfg(checkpoint_every=1, ema_decay=0.9), tmp_path / "r")
    t.fit(until_step=2)
    with torch.no_grad():
        t.ema.module.fc.bias[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="ema/fc.bias holds NaN or infinity after step 2"):
        t._save("last", 0)
    path = tmp_path / "r" / "checkpoints" / "last.safetensors"
    tensors, meta = load_checkpoint(path)
    tensors["ema/fc.bias"][0] = float("inf")
    path.write_bytes(st_save(tensors, metadata={"cnnlab": json.dumps(meta)}))
    with pytest.raises(ValueError, match="holds NaN or infinity in ema/fc.bias"):
        evaluate_run(tmp_path / "r", "last", test_data=_data(), model=Net())


def test_eval_refuses_non_finite_weights(tmp_path):
    _trainer(_cfg(epochs=1), tmp_path / "r").fit()
    path = tmp_path / "r" / "checkpoints" / "best.safetensors"
    tensors, meta = load_checkpoint(path)
    tensors["model/fc.weight"][1, 2] = float("nan")  # as a checkpoint written before this check existed
    path.write_bytes(st_save(tensors, metadata={"cnnlab": json.dumps(meta)}))
    with pytest.raises(ValueError, match="best.safetensors holds NaN or infinity in fc.weight: the run diverged"):
        evaluate_run(tmp_path / "r", test_data=_data(), model=Net())
    # resuming skips it too: last is intact, so it resumes from last without a word about best
    assert evaluate_run(tmp_path / "r", "last", test_data=_data(), model=Net())["images"] == 48


# ---------------------------------------------------------------- finished runs
def test_a_finished_run_is_never_modified(tmp_path):
    run = tmp_path / "r"
    _trainer(_cfg(), run).fit()
    before = _files(run)
    with pytest.raises(RunFinishedError, match="is finished \\(6 of 6 steps\\).*larger --epochs \\(now 2"):
        _trainer(_cfg(), run, resume=True)
    assert _files(run) == before and not (run / "train.lock").exists()
    summary = _trainer(_cfg(epochs=3), run, resume=True).fit()  # extending it is the way on
    assert summary["step"] == 9 and summary["finished"]


def test_a_run_stopped_after_its_last_checkpoint_gets_its_summary(tmp_path):
    run = tmp_path / "r"
    first = _trainer(_cfg(), run).fit()
    (run / "summary.json").unlink()
    metrics = (run / "metrics.jsonl").read_text()
    summary = _trainer(_cfg(), run, resume=True).fit()
    assert summary["finished"] and summary["step"] == 6
    assert summary["final_test_acc"] == first["final_test_acc"] and (run / "metrics.jsonl").read_text() == metrics


# ---------------------------------------------------------------- the schedule is fixed at the start
@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_extending_a_run_keeps_its_schedule(tmp_path, caplog, schedule):
    cfg = _cfg(schedule=schedule, max_steps=3, epochs=10)
    _trainer(cfg, tmp_path / "kept").fit()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        _trainer(cfg.replace(max_steps=6), tmp_path / "kept", resume=True).fit()
    final = lr_at(cfg, 3, 3)
    assert f"{schedule} schedule keeps the 3 steps it started with: steps 4..6 run at its final lr" in caplog.text
    assert [_lrs(tmp_path / "kept")[s] for s in (4, 5, 6)] == [final] * 3
    assert load_checkpoint(tmp_path / "kept" / "checkpoints" / "last.safetensors")[1]["scheduler"]["total_steps"] == 3
    # asked to re-stretch: the new length from step 3 on, recorded as a change
    _trainer(cfg, tmp_path / "stretched").fit()
    _trainer(cfg.replace(max_steps=6), tmp_path / "stretched", resume=True, restretch_schedule=True).fit()
    assert [_lrs(tmp_path / "stretched")[s] for s in (4, 5, 6)] == [lr_at(cfg, s, 6) for s in (3, 4, 5)]
    changes = json.loads((tmp_path / "stretched" / "config.json").read_text())["changes"]
    assert {"step": 3, "key": "schedule_steps", "old": 3, "new": 6} in changes


def test_allowed_changes_reach_the_optimiser(tmp_path):
    _trainer(_cfg(), tmp_path / "r").fit(until_step=2)
    t = _trainer(_cfg(weight_decay=0.01, momentum=0.5), tmp_path / "r", resume=True,
                 allow_changes=("weight_decay", "momentum"))
    assert all(g["weight_decay"] == 0.01 and g["momentum"] == 0.5 for g in t.optimizer.param_groups)
    t.fit()
    with pytest.raises(ValueError, match="--allow-change epochs: not an optimisation setting; it takes lr"):
        _trainer(_cfg(epochs=3), tmp_path / "r", resume=True, allow_changes=("epochs",))


@pytest.mark.parametrize(("key", "old", "new"), [("tta", None, "flip"), ("eval_batch_size", 500, 7)])
def test_a_resume_may_change_an_evaluation_only_key(tmp_path, key, old, new):
    # tta and eval_batch_size only change how evaluations see the test images: the weights are those of a run
    # that never changed them
    _trainer(_cfg(), tmp_path / "r").fit(until_step=3)
    t = _trainer(_cfg(**{key: new}), tmp_path / "r", resume=True)
    assert getattr(t.config, key) == new
    t.fit()
    changes = json.loads((tmp_path / "r" / "config.json").read_text())["changes"]
    assert changes == [{"step": 3, "key": key, "old": old, "new": new}]
    _trainer(_cfg(), tmp_path / "straight").fit()
    weights = [load_checkpoint(tmp_path / run / "checkpoints" / "last.safetensors")[0] for run in ("r", "straight")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[1] if k.startswith("model/"))


# ---------------------------------------------------------------- one process per run directory
def test_a_live_lock_is_refused_and_released_after_fit(tmp_path):
    run = tmp_path / "r"
    first = _trainer(_cfg(), run)
    lock = json.loads((run / "train.lock").read_text())
    assert lock["pid"] == os.getpid() and lock["host"] == platform.node()
    with pytest.raises(RunLockedError, match=f"is in use: pid {os.getpid()} on {platform.node()}"):
        _trainer(_cfg(), run, resume=True)
    first.fit(until_step=3)
    assert not (run / "train.lock").exists()
    assert _trainer(_cfg(), run, resume=True).fit()["finished"]


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, caplog):
    run = tmp_path / "r"
    _trainer(_cfg(), run).fit(until_step=2)
    holder = subprocess.Popen(  # a process that holds the lock as the Trainer does, then dies by SIGKILL
        [sys.executable, "-c", "import fcntl, json, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\nfcntl.flock(fd, fcntl.LOCK_EX)\n"
         "os.write(fd, json.dumps({'pid': os.getpid(), 'host': sys.argv[2], 'since': 'now'}).encode())\n"
         "print('locked', flush=True)\ntime.sleep(60)\n", str(run / "train.lock"), platform.node()],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid} on {platform.node()}"):
            _trainer(_cfg(), run, resume=True)
    finally:
        holder.kill()
        holder.wait()
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        assert _trainer(_cfg(), run, resume=True).fit()["finished"]
    assert f"took over the stale lock of pid {holder.pid} on {platform.node()}" in caplog.text


# ---------------------------------------------------------------- leftovers, corrupt checkpoints, early kills
def test_temp_files_go_and_a_corrupt_last_falls_back_to_best(tmp_path, caplog):
    run = tmp_path / "r"
    _trainer(_cfg(epochs=1), run).fit()
    (run / "checkpoints" / ".last.safetensors.k2j4_x.tmp").write_bytes(b"x" * 1000)
    (run / ".metrics.jsonl.abc.tmp").write_bytes(b"{")
    (run / "checkpoints" / "last.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}garbage")
    best_step = load_checkpoint(run / "checkpoints" / "best.safetensors")[1]["step"]
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        summary = _trainer(_cfg(epochs=2), run, resume=True).fit()
    assert summary["finished"] and summary["step"] == 6
    assert "removed 2 temporary file(s)" in caplog.text
    assert "last.safetensors is unreadable" in caplog.text
    assert f"resuming from the intact {run / 'checkpoints' / 'best.safetensors'} (step {best_step})" in caplog.text
    assert not list(run.rglob("*.tmp"))


def test_a_run_killed_before_its_config_starts_afresh(tmp_path, caplog):
    run = tmp_path / "r"
    (run / "checkpoints").mkdir(parents=True)  # what a kill during set-up leaves
    (run / ".config.json.x1.tmp").write_text("{")
    for resume in (True, False):  # the resume command and the original command both restart it
        with caplog.at_level(logging.INFO, logger="cnnlab"):
            t = _trainer(_cfg(), run, resume=resume)
        assert "has no config.json: its run stopped before set-up finished; starting it afresh" in caplog.text
        t.fit(until_step=1)
        caplog.clear()
        for name in ("config.json", "metrics.jsonl", "summary.json"):
            (run / name).unlink()
        for p in (run / "checkpoints").iterdir():
            p.unlink()
    # files of a run without its config.json are never overwritten
    (run / "checkpoints" / "last.safetensors").write_bytes(b"keep")
    with pytest.raises(FileExistsError, match="holds checkpoints/last.safetensors but no config.json"):
        _trainer(_cfg(), run)
    assert (run / "checkpoints" / "last.safetensors").read_bytes() == b"keep"
    with pytest.raises(FileNotFoundError, match="holds no run"):
        _trainer(_cfg(), tmp_path / "absent", resume=True)


def test_a_failed_set_up_leaves_no_lock(tmp_path):
    run = tmp_path / "r"
    with pytest.raises(ValueError, match="label 3 at row 0 is outside 0..1 \\(num_classes=2\\)"):
        _trainer(_cfg(num_classes=2), run)
    assert not run.exists()  # the folders it made are removed, the lock file first
    _trainer(_cfg(epochs=1), run).fit()
    assert not (run / "train.lock").exists()
