"""The catalogue of bad input (issue 11): each row is an input and the fragment of the one-line error it gets.

A row is either a ``cnnlab`` command line (it must exit 2 with exactly one line on stderr, no traceback) or a
Python call (it must raise ValueError / TypeError / OSError with a one-line message). Paths are relative to a
work folder with a finished run (``run``), data files and their broken variants; see ``work`` below.
"""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

from cnnlab.cli import main
from cnnlab.data import ArrayDataset, load_image_folder, load_npz
from cnnlab.train import TrainConfig, load_checkpoint
from cnnlab.train.rundir import RunLock

TINY = '''
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, num_classes=4, in_channels=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def tiny(num_classes=4, **options):
    return Tiny(num_classes, **options)


def raises(num_classes=4):
    raise RuntimeError("boom while building")


class NoForward(nn.Module):
    def forward(self, x):
        return {}["logits"]


def no_forward(num_classes=4):
    return NoForward()
'''

TRAIN = ["train", "badinput_tiny:tiny", "--data", "npz", "--train-file", "train.npz", "--test-file", "test.npz",
         "--batch-size", "16", "--set", "precision=fp32", "--out", "new"]
RESUME = ["train", "--resume", "run", "--trust-run-code"]
NAN = float("nan")

CASES = [
    # ---- config values: NaN, infinity, ranges, types (flags, --set and TrainConfig(...) alike)
    ("lr nan", TRAIN + ["--lr", "nan"], "config lr must be a finite number > 0, got nan"),
    ("lr inf", TRAIN + ["--lr", "inf"], "config lr must be a finite number > 0, got inf"),
    ("lr negative", TRAIN + ["--lr", "-0.1"], "config lr must be a finite number > 0, got -0.1"),
    ("TrainConfig lr nan", lambda: TrainConfig(lr=NAN), "config lr must be a finite number > 0, got nan"),
    ("weight_decay inf", TRAIN + ["--set", "weight_decay=float('inf')"], "'weight_decay' expects float"),
    ("weight_decay 1e999", TRAIN + ["--set", "weight_decay=1e999"], "weight_decay must be a finite number >= 0"),
    ("momentum 1.5", TRAIN + ["--set", "momentum=1.5"], "momentum must be a finite number in [0, 1), got 1.5"),
    ("grad_clip 0", TRAIN + ["--set", "grad_clip=0"], "grad_clip must be a finite number > 0, or null"),
    ("aux_weights nan", lambda: TrainConfig(aux_weights=(0.3, NAN)), "aux_weights must be a finite number >= 0"),
    ("checkpoint_every < 0", TRAIN + ["--set", "checkpoint_every=-1"], "checkpoint_every must be >= 0, got -1"),
    ("onecycle_pct 1", TRAIN + ["--set", "onecycle_pct=1.0"], "onecycle_pct must be a finite number in (0, 1)"),
    ("onecycle_pct 0", lambda: TrainConfig(onecycle_pct=0.0), "onecycle_pct must be a finite number in (0, 1)"),
    ("crop_padding < 0", TRAIN + ["--set", "crop_padding=-4"], "crop_padding must be >= 0, got -4"),
    ("device tpu", TRAIN + ["--set", "device=tpu"], "device='tpu' is not a device: use auto, cpu, cuda"),
    ("TrainConfig lr str", lambda: TrainConfig(lr="0.1"), "config key 'lr' expects float, got '0.1' (str)"),
    ("TrainConfig epochs str", lambda: TrainConfig(epochs="3"), "config key 'epochs' expects int, got '3'"),
    ("TrainConfig batch float", lambda: TrainConfig(batch_size=1.5), "config key 'batch_size' expects int"),
    ("TrainConfig milestones", lambda: TrainConfig(milestones=("a",)), "config key 'milestones' expects"),
    # ---- data: labels, classes, empty sets, folders for files
    ("label outside the named classes", TRAIN + ["--train-file", "bad_labels.npz"],
     "bad_labels.npz: label 15 at row 7 is outside 0..3 (its metadata names 4 classes)"),
    ("ArrayDataset label", lambda: ArrayDataset(np.zeros((3, 2, 2, 1), np.uint8), np.array([0, 4, 1]), ("a", "b"),
                                                source="f.npz"), "f.npz: label 4 at row 1 is outside 0..1"),
    ("negative label, no class names", TRAIN + ["--train-file", "negative.npz"],
     "negative.npz: label -1 at row 2 is not a class index >= 0"),
    ("classes differ between splits", TRAIN + ["--test-file", "other_classes.npz"],
     "the training set names classes (a, b, c, d) but the test set other_classes.npz names (w, x, y, z)"),
    ("empty data set", TRAIN + ["--train-file", "empty.npz"], "the training set empty.npz is empty (0 images)"),
    ("folder as npz file", TRAIN + ["--train-file", "folder"], "npz file (--train-file / --test-file) folder is a "
                                                               "folder; give the file itself"),
    ("load_npz folder", lambda: load_npz("folder"), "folder is a folder"),
    ("file as image folder", lambda: load_image_folder("train.npz"), "image folder train.npz is a file"),
    ("folder as --config", TRAIN + ["--config", "folder"], "config file folder is a folder"),
    ("--data-dir on an npz run", TRAIN + ["--data-dir", "elsewhere"], "--data-dir does not apply to --data npz"),
    ("--train-file on cifar10", ["train", "resnet20", "--data", "cifar10", "--train-file", "train.npz"],
     "--train-file applies to --data npz or imagefolder only"),
    ("--input 3x224", ["summary", "resnet20", "--input", "3x224"], "--input must be CxHxW with 3 positive integers"),
    ("--input 3x32x32x1", ["summary", "resnet20", "--input", "3x32x32x1"], "--input must be CxHxW with 3"),
    # ---- eval of a run on another test set
    ("eval: another image size", ["eval", "run", "--test-file", "big.npz", "--trust-run-code"],
     "big.npz holds 3x16x16 images (CxHxW) but the run was trained on 3x8x8"),
    ("eval: another channel count", ["eval", "run", "--test-file", "grey.npz", "--trust-run-code"],
     "grey.npz holds 1x8x8 images (CxHxW) but the run was trained on 3x8x8"),
    ("eval: another class set", ["eval", "run", "--test-file", "other_classes.npz", "--trust-run-code"],
     "other_classes.npz names classes (w, x, y, z) but the run was trained on (a, b, c, d)"),
    ("eval: labels beyond the run's classes", ["eval", "run", "--test-file", "unnamed_wide.npz", "--trust-run-code"],
     "unnamed_wide.npz: label 6 at row 0 is outside 0..3 (the run has 4 classes)"),
    ("eval: --data-dir on an npz run", ["eval", "run", "--data-dir", "elsewhere", "--trust-run-code"],
     "--data-dir applies to the official data sets only"),
    ("eval: non-finite weights", ["eval", "nan_run", "--trust-run-code"], "holds NaN or infinity in fc.weight"),
    # ---- resume
    ("--out with --resume", RESUME + ["--out", "other"], "--out other with --resume run: a run continues in its own"),
    ("resume a finished run", RESUME, "run is finished (2 of 2 steps) and is left as it is; extend it with a larger"),
    ("resume with another lr", RESUME + ["--epochs", "2", "--lr", "0.01"],
     "cannot change lr when resuming run unasked: pass --allow-change lr"),
    ("--allow-change epochs", RESUME + ["--epochs", "2", "--allow-change", "epochs"],
     "--allow-change epochs: not an optimisation setting; it takes lr"),
    ("--allow-change without --resume", TRAIN + ["--allow-change", "lr"], "--allow-change applies to --resume"),
    ("--resume a file", ["train", "--resume", "train.npz"], "--resume train.npz is a file"),
    ("--resume nothing", ["train", "--resume", "absent"], "absent holds no run (no such folder)"),
    ("--resume a run killed in set-up", ["train", "--resume", "setup_killed"],
     "setup_killed has no config.json: its run stopped before set-up finished; start it afresh"),
    ("a run in use", ["train", "--resume", "locked", "--epochs", "2", "--trust-run-code"],
     "locked is in use: pid"),
    ("--out holding a run's files", TRAIN[:-1] + ["orphan"], "orphan holds checkpoints/last.safetensors but no "
                                                             "config.json"),
    # ---- broken files and broken networks: one line naming the file or the callable, never a traceback
    ("truncated npz", TRAIN + ["--train-file", "truncated.npz"], "truncated.npz: cannot be read as .npz"),
    ("npz with a bad CRC", TRAIN + ["--train-file", "bad_crc.npz"], "bad_crc.npz: cannot be read as .npz (Bad CRC"),
    ("truncated idx.gz", ["train", "resnet20", "--data", "mnist", "--data-dir", "broken", "--set", "download=false"],
     "train-images-idx3-ubyte.gz: cannot be decompressed"),
    ("truncated CIFAR pickle", ["train", "resnet20", "--data", "cifar10", "--data-dir", "broken", "--set",
                                "download=false"], "data_batch_1: cannot be unpickled"),
    ("truncated CIFAR archive", ["train", "resnet20", "--data", "cifar100", "--data-dir", "broken", "--set",
                                 "download=false"], "cifar-100-python.tar.gz cannot be unpacked"),
    ("a data folder that cannot be made", ["train", "resnet20", "--data", "svhn", "--data-dir", "train.npz/x"],
     "SVHN files are missing and train.npz/x/svhn cannot be created"),
    ("a callable that raises", ["train", "badinput_tiny:raises"] + TRAIN[2:],
     "badinput_tiny:raises(num_classes=4) failed: RuntimeError: boom while building"),
    ("a forward pass that raises", ["train", "badinput_tiny:no_forward"] + TRAIN[2:],
     "badinput_tiny:no_forward cannot take the 3x8x8 images of npz: KeyError: 'logits'"),
    ("a callable that cannot be imported", ["train", "badinput_nothere:net"] + TRAIN[2:],
     "cannot import 'badinput_nothere'"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder with train/test npz files, broken variants, a finished run, a diverged one and a locked one."""
    w = tmp_path_factory.mktemp("bad_input")
    (w / "badinput_tiny.py").write_text(TINY)
    rng = np.random.default_rng(0)
    named = np.array(["a", "b", "c", "d"])

    def save(name, n=16, size=8, channels=3, y=None, classes=named):
        x = rng.integers(0, 256, (n, size, size, channels), dtype=np.uint8)
        y = rng.integers(0, 4, n) if y is None else y
        np.savez(w / name, x=x, y=y, **({} if classes is None else {"classes": classes}))

    save("train.npz", 32)
    save("test.npz")
    save("bad_labels.npz", y=np.where(np.arange(16) == 7, 15, np.arange(16) % 4))
    save("negative.npz", y=np.array([0, 1, -1] + [0] * 13), classes=None)
    save("other_classes.npz", classes=np.array(["w", "x", "y", "z"]))
    save("unnamed_wide.npz", y=np.full(16, 6), classes=None)
    save("big.npz", size=16)
    save("grey.npz", channels=1)
    save("empty.npz", n=0, y=np.zeros(0, np.int64))
    whole = (w / "train.npz").read_bytes()
    (w / "truncated.npz").write_bytes(whole[:len(whole) // 2])
    flipped = bytearray(whole)
    flipped[200] ^= 0xFF  # inside the first member's data: the zip's CRC check fails
    (w / "bad_crc.npz").write_bytes(bytes(flipped))
    (w / "broken" / "mnist").mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (w / "broken" / "mnist" / f"{stem}.gz").write_bytes(gzip.compress(b"\0\0\x08\x03" + bytes(64))[:20])
    (w / "broken" / "cifar-10-batches-py").mkdir()
    (w / "broken" / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps({"label_names": list("abcd")}))
    (w / "broken" / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps({"data": [1, 2, 3]})[:9])
    (w / "broken" / "cifar100").mkdir()
    (w / "broken" / "cifar100" / "cifar-100-python.tar.gz").write_bytes(gzip.compress(b"not a tar" * 100)[:50])
    (w / "folder").mkdir()
    (w / "setup_killed" / "checkpoints").mkdir(parents=True)
    (w / "orphan" / "checkpoints").mkdir(parents=True)
    (w / "orphan" / "checkpoints" / "last.safetensors").write_bytes(b"a run's file")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(w)
        mp.syspath_prepend(str(w))
        mp.setenv("CI", "true")
        assert main(TRAIN[:-1] + ["run", "--epochs", "1"]) == 0
    torch.set_num_threads(threads)
    shutil.copytree(w / "run", w / "nan_run")
    for name in ("best", "last"):
        path = w / "nan_run" / "checkpoints" / f"{name}.safetensors"
        tensors, meta = load_checkpoint(path)
        tensors["model/fc.weight"][0, 0] = float("inf")
        path.write_bytes(st_save(tensors, metadata={"cnnlab": json.dumps(meta)}))
    shutil.copytree(w / "run", w / "locked")
    lock = RunLock(w / "locked")  # held by this process for the module: another open file cannot take it
    lock.acquire()
    yield w
    lock.release()
    sys.modules.pop("badinput_tiny", None)


@pytest.mark.parametrize("given, fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line(work, monkeypatch, capsys, given, fragment):
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    monkeypatch.setenv("CI", "true")
    if callable(given):
        with pytest.raises((ValueError, TypeError, OSError)) as err:
            given()
        message = str(err.value)
        assert fragment in message and "\n" not in message, message
        return
    before = sorted(p.name for p in work.iterdir())
    code = main(given)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and fragment in err, err
    assert sorted(p.name for p in work.iterdir()) == before  # a refused command leaves no folder behind
