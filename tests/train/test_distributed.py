"""torchrun with 2 gloo processes on the CPU (against 1 process with the same global batch), and the pieces
that keep the ranks consistent (the weights digest behind summary.json's ranks_identical)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.train import evaluate_run, load_checkpoint
from cnnlab.train.distributed import check_world_change, weights_digest

# no BatchNorm: its batch statistics are per process under DDP, which would make the two runs differ
NET = '''
import torch
from torch import nn


def net(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.0), nn.Linear(6, num_classes))
'''


def _with_buffers(**buffers: torch.Tensor) -> nn.Module:
    module = nn.Module()
    for name, value in buffers.items():
        module.register_buffer(name, value)
    return module


def test_weights_digest_batchnorm():
    bn = nn.BatchNorm2d(3)  # num_batches_tracked is a 0-dim int64 buffer
    digest = weights_digest(bn)
    assert digest == weights_digest(nn.BatchNorm2d(3))
    bn.num_batches_tracked += 1
    assert weights_digest(bn) != digest


def test_weights_digest_every_dtype_and_shape():
    odd = _with_buffers(flag=torch.tensor(True), mask=torch.tensor([True, False]),
                        bf16=torch.ones(2, dtype=torch.bfloat16), scalar=torch.tensor(1.5), empty=torch.empty(0, 3),
                        strided=torch.arange(6.0).view(2, 3).t())
    assert weights_digest(odd) == weights_digest(odd)
    odd.flag.fill_(False)
    assert weights_digest(odd) != weights_digest(_with_buffers(flag=torch.tensor(True)))
    # the same bytes under another dtype or shape are other weights
    assert weights_digest(_with_buffers(a=torch.zeros(4, dtype=torch.int32))) != weights_digest(
        _with_buffers(a=torch.zeros(2, dtype=torch.int64)))
    assert weights_digest(_with_buffers(a=torch.zeros(4))) != weights_digest(_with_buffers(a=torch.zeros(2, 2)))


def test_check_world_change():
    # batch_size is the global batch: a run resumed on another number of processes splits it the new number of ways
    note = check_world_change("runs/x", 2, 1, 16)
    assert note.startswith("1 process instead of 2: the global batch stays 16 images, 16 per process (before: 8)")
    with pytest.raises(ValueError) as refused:
        check_world_change("runs/x", 1, 2, 15)
    assert str(refused.value) == ("runs/x trained on 1 process with a global batch of 15, which 2 processes cannot "
                                  "split evenly; resume it on 1 process, or on a number of processes that divides 15")


def _cnnlab(tmp_path, args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    """``python -m cnnlab ARGS`` in ``tmp_path``, under ``torch.distributed.run`` (torchrun) for 2+ processes."""
    args = ["-m", "cnnlab", *args]
    if processes > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def _train(tmp_path, out: str, processes: int) -> subprocess.CompletedProcess:
    return _cnnlab(tmp_path, ["train", "ddpnet:net", "--data", "npz", "--train-file", "train.npz", "--test-file",
                              "test.npz", "--out", out, "--batch-size", "16", "--epochs", "2", "--lr", "0.1",
                              "--set", "precision=fp32", "--set", "channels_last=false", "--quiet"], processes)


def _write_npz(folder, size: int, counts: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        np.savez(folder / f"{name}.npz", x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                 y=rng.integers(0, 4, n))


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    (tmp_path / "ddpnet.py").write_text(NET)
    _write_npz(tmp_path, 8, {"train": 64, "test": 24})
    one = _train(tmp_path, "one", 1)
    assert one.returncode == 0, one.stderr
    two = _train(tmp_path, "two", 2)
    assert two.returncode == 0, two.stderr
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_identical"] is True and summary["step"] == 8
    a, _ = load_checkpoint(tmp_path / "one" / "checkpoints" / "last.safetensors")
    b, _ = load_checkpoint(tmp_path / "two" / "checkpoints" / "last.safetensors")
    for key in (k for k in a if k.startswith("model/")):
        # same images, same augmentation, averaged gradients: equal up to float summation order
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)
    # metrics written once (rank 0), evaluation covers the whole test set across both ranks
    lines = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "step" for r in lines) == 8
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["final_test_acc"] == pytest.approx(
        summary["final_test_acc"])


# zoo networks with BatchNorm, as README runs them: resnet20, and GoogLeNet with its two aux heads (torchvision's
# layout: BatchNorm, and adaptive aux pools that train at 32x32; the paper's layout has no BatchNorm and its aux
# heads need 79x79; inception_v3's aux head needs 299x299, too slow for a test)
ZOO = {"resnet20": [], "googlenet": ["--set", "model_options={'layout': 'torchvision'}"]}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(ZOO))
def test_zoo_network_under_torchrun(tmp_path, model):
    # 48 images in batches of 16: 3 steps an epoch, so 4 steps end an epoch (evaluate, best) and then the run;
    # 21 test images: the two ranks evaluate uneven shards (11 + 10)
    _write_npz(tmp_path, 32, {"train": 48, "test": 21})
    run = _cnnlab(tmp_path, ["train", model, *ZOO[model], "--data", "npz", "--train-file", "train.npz",
                             "--test-file", "test.npz", "--batch-size", "16", "--max-steps", "4", "--out", "ddp",
                             "--quiet"], processes=2)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["step"] == 4 and summary["finished"]
    assert summary["ranks_identical"] is True
    assert summary["test_images"] == 21  # the whole test set, not one rank's shard
    for name in ("last", "best"):
        assert (tmp_path / "ddp" / "checkpoints" / f"{name}.safetensors").is_file()
    lines = [json.loads(line) for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if r["kind"] == "step"] == [1, 2, 3, 4]  # one stream, from rank 0
    assert [r["step"] for r in lines if r["kind"] == "epoch"] == [3, 4]
    # one process evaluating a saved checkpoint sees the model that the two ranks evaluated together (rank 0's
    # BatchNorm buffers, broadcast before every evaluation and save)
    for name, accuracy in (("last", summary["final_test_acc"]), ("best", summary["best_test_acc"])):
        result = evaluate_run(tmp_path / "ddp", name, test_file=tmp_path / "test.npz")
        assert result["images"] == 21 and result["accuracy"] == accuracy, name


def test_sync_bn_refused_on_cpu(tmp_path, capsys):
    # PyTorch's SyncBatchNorm runs on GPUs only (DistributedDataParallel refuses it on the CPU): one line, no run
    _write_npz(tmp_path, 8, {"train": 16, "test": 4})
    code = main(["train", "resnet20", "--data", "npz", "--train-file", str(tmp_path / "train.npz"), "--test-file",
                 str(tmp_path / "test.npz"), "--out", str(tmp_path / "run"), "--set", "sync_bn=true", "--set",
                 "device=cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "sync_bn needs CUDA devices" in err, err
    assert not (tmp_path / "run").exists()
