"""Trainer on tiny in-memory data: run directory, exact resume, bad input, evaluation, aux losses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.data import ArrayDataset, OfflineError
from cnnlab.models import ModelOutput
from cnnlab.train import NonFiniteLossError, TrainConfig, Trainer, evaluate_run, load_checkpoint
from cnnlab.train.rundir import source_commit

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 48, size: int = 8, classes: int = 4, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 80, (n, size, size, 3), dtype=np.uint8)
    x[np.arange(n), :, :, y % 3] += 150  # a learnable signal: the label's channel is bright
    return ArrayDataset(x, y, tuple(f"c{i}" for i in range(classes)))


class Tiny(nn.Module):
    def __init__(self, num_classes: int = 4, dropout: float = 0.2, aux: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(6, num_classes)
        self.aux = nn.Linear(6, num_classes) if aux else None

    def forward(self, x):
        if x.shape[-1] < 4:
            raise ValueError("input is too small for Tiny: the smallest valid size is 4x4")
        h = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        logits = self.fc(self.drop(h))
        if self.aux is not None and self.training:
            return ModelOutput(logits, (self.aux(h),))
        return logits


def _cfg(**kw) -> TrainConfig:
    base = dict(model="tiny", data="npz", epochs=2, batch_size=16, precision="fp32", lr=0.05, seed=3)
    return TrainConfig(**{**base, **kw})


def _run(cfg, out, until=None, resume=False, model=None, data=None):
    data = data or _data()
    torch.manual_seed(0)  # a model passed in is initialised by its creator, not by the Trainer
    t = Trainer(cfg, out, resume=resume, model=model or Tiny(), train_data=data, test_data=data, progress=False)
    return t, t.fit(until)


def test_run_directory(tmp_path):
    t, summary = _run(_cfg(), tmp_path / "run")
    run = tmp_path / "run"
    assert summary["step"] == 6 and summary["finished"]  # 48 images / 16 = 3 steps x 2 epochs
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["lr"] == 0.05 and config["environment"]["torch"] == torch.__version__
    # the record says which cnnlab made the run: the version, and the commit when it runs from its clone
    assert config["environment"]["cnnlab"] == cnnlab.__version__
    assert config["environment"]["git_commit"] == source_commit()
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["kind"] == "step"]
    epochs = [r for r in lines if r["kind"] == "epoch"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6] and len(epochs) == 2
    assert {"loss", "acc", "lr", "images_per_s"} <= set(steps[0])
    assert {"test_acc", "images_per_s", "lr"} <= set(epochs[-1])
    tensors, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    assert meta["step"] == 6 and "rng/run" in tensors and "rng/torch_cpu" in tensors
    assert any(k.startswith("optim/") for k in tensors)
    assert (run / "checkpoints" / "best.safetensors").exists()
    assert json.loads((run / "summary.json").read_text())["best_test_acc"] == summary["best_test_acc"]


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop"])
def test_resume_is_bitwise_exact(tmp_path, optimizer):
    # 3 steps per epoch: stopping at step 4 resumes in the middle of epoch 2, with dropout and augmentation
    cfg = _cfg(epochs=3, schedule="cosine", optimizer=optimizer, nesterov=True)
    straight, _ = _run(cfg, tmp_path / "a")
    _run(cfg, tmp_path / "b", until=4)
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")[1]["step"] == 4
    torch.manual_seed(12345)  # disturb the global RNG: resume must restore it
    resumed, _ = _run(cfg, tmp_path / "b", resume=True)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines_a = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lines_b = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "images_per_s"} for x in lines_a]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "images_per_s"} for x in lines_b]


TINY_RNG = ("from torch import nn\n\ndef tiny(num_classes=4):\n    return nn.Sequential(nn.Conv2d(3, 4, 3), "
            "nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n")


def test_the_callers_torch_rng_is_left_alone(tmp_path, monkeypatch):
    # the Trainer seeds and draws (weight init, dropout) in a fork of the process-wide RNG
    (tmp_path / "tinyrng_trainer.py").write_text(TINY_RNG)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg, data = _cfg(model="tinyrng_trainer:tiny"), _data()
    torch.manual_seed(cfg.seed)
    seeded = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(4, 4)).state_dict()
    runs = []
    for caller_seed in (5, 6):
        torch.manual_seed(caller_seed)
        before = torch.get_rng_state()
        t = Trainer(cfg, tmp_path / f"run{caller_seed}", train_data=data, test_data=data, progress=False)
        assert torch.equal(torch.get_rng_state(), before)
        assert all(torch.equal(v, seeded[k]) for k, v in t.model.state_dict().items())  # init: cfg.seed's
        t.fit(until_step=4)
        assert torch.equal(torch.get_rng_state(), before)
        runs.append(t.model.state_dict())
    assert all(torch.equal(v, runs[1][k]) for k, v in runs[0].items())  # whatever the caller's RNG held

def test_training_learns(tmp_path):
    data = _data(96)
    _, summary = _run(_cfg(epochs=6, lr=0.2, schedule="cosine", crop_padding=0, hflip=False), tmp_path / "r",
                      data=data)
    assert summary["best_test_acc"] >= 0.6  # chance is 0.25


def test_aux_outputs_and_smoothing(tmp_path):
    _, summary = _run(_cfg(label_smoothing=0.1, aux_weights=(0.4,), grad_clip=1.0), tmp_path / "r",
                      model=Tiny(aux=True))
    assert summary["finished"]


class NaNAfter(Tiny):
    def __init__(self, calls: int) -> None:
        super().__init__(dropout=0.0)
        self.calls, self.left = calls, calls

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.left -= 1
            if self.left < 0:
                return out * float("nan")
        return out


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path):
    with pytest.raises(NonFiniteLossError, match="at step 4") as err:
        _run(_cfg(checkpoint_every=1), tmp_path / "r", model=NaNAfter(3))
    assert "\n" not in str(err.value)
    tensors, meta = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert meta["step"] == 3 and all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model/"))


def test_bad_input(tmp_path):
    bad = _data()
    bad.y[5] = 7
    with pytest.raises(ValueError, match="label 7 at row 5 is outside 0..3"):
        _run(_cfg(num_classes=4), tmp_path / "a", data=bad)
    with pytest.raises(ValueError, match="cannot take the 3x2x2 images.*smallest valid size"):
        _run(_cfg(), tmp_path / "b", data=_data(size=2))
    (tmp_path / "file").write_text("x")
    with pytest.raises(PermissionError, match="cannot write to run directory"):
        _run(_cfg(), tmp_path / "file" / "run")
    _run(_cfg(epochs=1), tmp_path / "c")
    before = (tmp_path / "c" / "checkpoints" / "last.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        _run(_cfg(epochs=1), tmp_path / "c")
    assert (tmp_path / "c" / "checkpoints" / "last.safetensors").read_bytes() == before
    with pytest.raises(FileNotFoundError, match="holds no run"):
        _run(_cfg(), tmp_path / "nothing", resume=True)
    # killed before its first checkpoint: resuming starts from step 0 with the stored config
    (tmp_path / "c" / "checkpoints" / "last.safetensors").unlink()
    (tmp_path / "c" / "checkpoints" / "best.safetensors").unlink()
    _, summary = _run(_cfg(epochs=1), tmp_path / "c", resume=True)
    assert summary["step"] == 3 and (tmp_path / "c" / "checkpoints" / "last.safetensors").read_bytes() == before
    # a corrupt last checkpoint falls back to the intact best one; both corrupt: an error naming both
    (tmp_path / "c" / "checkpoints" / "best.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}garbage")
    (tmp_path / "c" / "checkpoints" / "last.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}garbage")
    with pytest.raises(ValueError, match="last.safetensors is unreadable.*best.safetensors is unreadable"):
        _run(_cfg(epochs=2), tmp_path / "c", resume=True)


def test_evaluate_run_confusion(tmp_path):
    data = _data()
    t, _ = _run(_cfg(), tmp_path / "r", data=data)
    result = evaluate_run(tmp_path / "r", "last", test_data=data, model=Tiny())
    # recompute the predictions independently from the trained model
    model = t.model.eval()
    x = (torch.from_numpy(data.x).float() / 255 - torch.tensor(t.mean)) / torch.tensor(t.std)
    with torch.no_grad():
        pred = model(x.permute(0, 3, 1, 2)).argmax(1).numpy()
    expected = np.zeros((4, 4), int)
    np.add.at(expected, (data.y, pred), 1)
    assert np.array_equal(np.array(result["confusion"]), expected)
    assert result["accuracy"] == pytest.approx(np.trace(expected) / len(data))


def test_evaluate_run_on_other_test_data(tmp_path):
    _run(_cfg(data="cifar10", download=False), tmp_path / "r")
    # an official-format run: a test file does not apply, the data folder does (and is the one looked in)
    with pytest.raises(ValueError, match="--data-dir"):
        evaluate_run(tmp_path / "r", "last", model=Tiny(), test_file=tmp_path / "t.npz")
    with pytest.raises(OfflineError, match="elsewhere"):
        evaluate_run(tmp_path / "r", "last", model=Tiny(), data_dir=tmp_path / "elsewhere")
