"""torchrun with 2 gloo processes on the CPU: against 1 process with the same global batch, on BatchNorm zoo
networks, killed and resumed (also on another number of processes), and as two "nodes" over the loopback
address; and the pieces that keep the ranks consistent (the weights digest behind summary.json's
ranks_identical). Each torchrun launch costs seconds, so the launches are few and the runs tiny."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.data import ArrayDataset
from cnnlab.train import TrainConfig, Trainer, evaluate_run, load_checkpoint
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


def test_distributed_false_trains_alone_under_torchrun(tmp_path, monkeypatch):
    """An experiment's rank trains whole runs by itself: ``distributed=False`` joins no process group and
    writes the run as rank 0 of 1, whatever torchrun's variables say."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("MASTER_ADDR", "MASTER_PORT"):  # joining would fail at once rather than wait for a peer
        monkeypatch.delenv(name, raising=False)
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, 32), tuple("abcd"))
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    cfg = TrainConfig(model="x", data="npz", epochs=1, batch_size=16, precision="fp32", device="cpu")
    trainer = Trainer(cfg, tmp_path / "run", model=net, train_data=data, test_data=data, progress=False,
                      distributed=False)
    assert (trainer.dist.rank, trainer.dist.world_size) == (0, 1) and not torch.distributed.is_initialized()
    summary = trainer.fit()
    assert summary["processes"] == 1 and summary["finished"] and (tmp_path / "run" / "summary.json").is_file()


def _cnnlab(tmp_path, args: list[str], processes: int = 1) -> subprocess.CompletedProcess:
    """``python -m cnnlab ARGS`` in ``tmp_path``, under ``torch.distributed.run`` (torchrun) for 2+ processes."""
    args = ["-m", "cnnlab", *args]
    if processes > 1:
        args = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *args]
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def _train(folder, out: str, processes: int, *more: str) -> subprocess.CompletedProcess:
    return _cnnlab(folder, ["train", "ddpnet:net", "--data", "npz", "--train-file", "train.npz", "--test-file",
                            "test.npz", "--out", out, "--batch-size", "16", "--epochs", "2", "--lr", "0.1",
                            "--set", "precision=fp32", "--set", "channels_last=false", "--quiet",
                            # a constant lr: a run stopped early by --max-steps (whose schedule it shortens) and
                            # resumed follows the uninterrupted run
                            "--set", "schedule=constant", *more], processes)


def _write_npz(folder, size: int, counts: dict[str, int]) -> None:
    rng = np.random.default_rng(0)
    for name, n in counts.items():
        np.savez(folder / f"{name}.npz", x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                 y=rng.integers(0, 4, n))


def _assert_close_weights(a_dir: Path, b_dir: Path) -> None:
    a, _ = load_checkpoint(a_dir / "checkpoints" / "last.safetensors")
    b, _ = load_checkpoint(b_dir / "checkpoints" / "last.safetensors")
    for key in (k for k in a if k.startswith("model/")):
        # same images, same augmentation, averaged gradients: equal up to float summation order
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A folder with ddpnet.py, its data (64 training images: 4 batches of 16 an epoch) and ``one``: 2 epochs
    on one process, the run every process count must follow."""
    folder = tmp_path_factory.mktemp("ddpnet")
    (folder / "ddpnet.py").write_text(NET)
    _write_npz(folder, 8, {"train": 64, "test": 24})
    one = _train(folder, "one", 1)
    assert one.returncode == 0, one.stderr
    return folder


@pytest.mark.slow
def test_two_gloo_processes_match_one(small):
    two = _train(small, "two", 2)
    assert two.returncode == 0, two.stderr
    summary = json.loads((small / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["ranks_identical"] is True and summary["step"] == 8
    _assert_close_weights(small / "one", small / "two")
    # metrics written once (rank 0), evaluation covers the whole test set across both ranks
    lines = [json.loads(line) for line in (small / "two" / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["kind"] == "step" for r in lines) == 8
    assert json.loads((small / "one" / "summary.json").read_text())["final_test_acc"] == pytest.approx(
        summary["final_test_acc"])


def test_check_world_change():
    note = check_world_change("runs/x", 2, 1, 16)
    assert note.startswith("1 process instead of 2: the global batch stays 16 images, 16 per process (before: 8)")
    with pytest.raises(ValueError) as refused:
        check_world_change("runs/x", 1, 2, 15)
    assert str(refused.value) == ("runs/x trained on 1 process with a global batch of 15, which 2 processes cannot "
                                  "split evenly; resume it on 1 process, or on a number of processes that divides 15")


def test_resume_may_change_data_dir(tmp_path):
    # each machine may keep the official files elsewhere (--data-dir), also when the run is resumed there;
    # which files (--data, --train-file) stays fixed
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), rng.integers(0, 4, 32),
                        ("a", "b", "c", "d"))

    def trainer(resume: bool, **kw) -> Trainer:
        cfg = TrainConfig(**{**dict(model="net", data="npz", epochs=1, batch_size=16, precision="fp32"), **kw})
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
        return Trainer(cfg, tmp_path / "r", resume=resume, model=model, train_data=data, test_data=data,
                       progress=False)

    trainer(False, data_dir="node0").fit(until_step=1)
    with pytest.raises(ValueError, match="cannot change train_file when resuming"):
        trainer(True, data_dir="node1", train_file="other.npz")
    assert trainer(True, data_dir="node1").fit()["step"] == 2
    assert json.loads((tmp_path / "r" / "config.json").read_text())["changes"] == [
        {"step": 1, "key": "data_dir", "old": "node0", "new": "node1"}]


@pytest.mark.slow
@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_resume_on_another_number_of_processes(small, first, then):
    # batch_size is the global batch, so a run stopped at step 4 goes on with the same 16 images per step
    out = f"from{first}to{then}"
    started = _train(small, out, first, "--max-steps", "4")
    assert started.returncode == 0, started.stderr
    resumed = _train(small, out, then, "--max-steps", "8", "--resume", out)  # the same command, plus --resume
    assert resumed.returncode == 0, resumed.stderr
    assert check_world_change(small / out, first, then, 16) in resumed.stderr
    summary = json.loads((small / out / "summary.json").read_text())
    assert summary["step"] == 8 and summary["finished"] and summary["processes"] == then
    changes = json.loads((small / out / "config.json").read_text())["changes"]
    assert {"step": 4, "key": "processes", "old": first, "new": then} in changes
    _assert_close_weights(small / "one", small / out)  # a batch of 16 per process would be far off


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


# ---------------------------------------------------------------- resnet20: killed and resumed, and two "nodes"
def _resnet20(out: str) -> list[str]:
    # 48 images in global batches of 16: 3 steps an epoch (each ends with an evaluation and a best checkpoint);
    # a checkpoint every 2 steps as well, so a kill loses at most a step or two
    return ["train", "resnet20", "--data", "npz", "--train-file", "train.npz", "--test-file", "test.npz",
            "--batch-size", "16", "--max-steps", "20", "--set", "checkpoint_every=2", "--out", out, "--quiet"]


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(folder), "OMP_NUM_THREADS": "1"}


def _launch(folder: Path, launcher: list[str], args: list[str], *, own_group: bool = False) -> subprocess.Popen:
    """torchrun running cnnlab; ``own_group``: in a process group of its own, as a terminal's foreground job."""
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "cnnlab", *args],
                            cwd=folder, env=_env(folder), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_group)


def _logged_step(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=0)


def _wait_for_step(proc: subprocess.Popen, run_dir: Path, step: int) -> None:
    """Until rank 0 has logged ``step`` (a run that ends first fails the test: nothing was interrupted)."""
    deadline = time.monotonic() + 300
    while _logged_step(run_dir) < step:
        assert proc.poll() is None, f"the run ended before step {step}: {proc.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, f"no step {step} in 300 s"
        time.sleep(0.01)


def _workers(launcher: subprocess.Popen) -> dict[int, int]:
    """rank -> pid of the processes torchrun started."""
    found = {}
    for task in Path(f"/proc/{launcher.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            rank = next(e.split(b"=", 1)[1] for e in environ if e.startswith(b"RANK="))
            found[int(rank)] = int(pid)
    return found


def _checkpoint(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict]:
    return load_checkpoint(run_dir / "checkpoints" / "last.safetensors")


def _steps(run_dir: Path) -> list[tuple[int, float]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in lines if r["kind"] == "step"]


@pytest.fixture(scope="module")
def resnet_reference(tmp_path_factory) -> Path:
    """A folder with CIFAR-shaped data and ``ref``: resnet20 trained uninterrupted on 2 processes."""
    folder = tmp_path_factory.mktemp("resnet20")
    _write_npz(folder, 32, {"train": 48, "test": 8})
    run = _cnnlab(folder, _resnet20("ref"), processes=2)
    assert run.returncode == 0, run.stderr[-3000:]
    return folder


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds torchrun's workers through /proc (Linux)")
def test_resume_under_torchrun_after_sigkill_and_sigterm(resnet_reference):
    folder, run_dir = resnet_reference, resnet_reference / "killed"
    command = ["--standalone", "--nproc_per_node=2"]
    # SIGKILL to rank 0 (it holds the lock and writes the checkpoints): torchrun ends rank 1, the run fails
    first = _launch(folder, command, _resnet20("killed"))
    _wait_for_step(first, run_dir, 3)
    os.kill(_workers(first)[0], signal.SIGKILL)
    assert first.wait(timeout=120) != 0
    # the same command plus --resume; SIGTERM to the launcher: torchrun passes it on, both ranks stop on one step
    second = _launch(folder, command, [*_resnet20("killed"), "--resume", "killed"])
    _wait_for_step(second, run_dir, _checkpoint(run_dir)[1]["step"] + 3)
    second.send_signal(signal.SIGTERM)
    err = second.communicate(timeout=120)[1]
    assert second.returncode != 0 and "cnnlab train: SIGTERM at step" in err, err[-3000:]
    assert "checkpoint saved; continue with --resume killed" in err
    third = _cnnlab(folder, [*_resnet20("killed"), "--resume", "killed"], processes=2)
    assert third.returncode == 0, third.stderr[-3000:]
    # bitwise the uninterrupted run: weights, BatchNorm buffers, optimiser state, the augmentation generator
    (ref, ref_meta), (got, meta) = _checkpoint(folder / "ref"), _checkpoint(run_dir)
    assert meta["step"] == ref_meta["step"] == 20 and sorted(got) == sorted(ref)
    different = [k for k in ref if not torch.equal(ref[k], got[k])]
    assert not different, different[:5]
    # one metrics stream, each step once, with the losses of the uninterrupted run
    assert _steps(run_dir) == _steps(folder / "ref")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["finished"] and summary["ranks_identical"] is True


@pytest.mark.slow
def test_ctrl_c_under_torchrun_saves_and_resumes_bitwise(resnet_reference):
    # Ctrl-C in a terminal sends SIGINT to every process of the foreground group: the launcher and both ranks
    # (and the launcher passes it on again); the ranks agree on one step, save, and the resumed run is exact
    folder, run_dir = resnet_reference, resnet_reference / "ctrl_c"
    command = ["--standalone", "--nproc_per_node=2"]
    first = _launch(folder, command, _resnet20("ctrl_c"), own_group=True)
    _wait_for_step(first, run_dir, 3)
    os.killpg(first.pid, signal.SIGINT)
    err = first.communicate(timeout=120)[1]
    assert first.returncode != 0 and "cnnlab train: SIGINT at step" in err, err[-3000:]
    assert "checkpoint saved; continue with --resume ctrl_c" in err
    stopped = _checkpoint(run_dir)[1]["step"]
    assert 3 <= stopped < 20
    second = _cnnlab(folder, [*_resnet20("ctrl_c"), "--resume", "ctrl_c"], processes=2)
    assert second.returncode == 0, second.stderr[-3000:]
    (ref, _), (got, meta) = _checkpoint(folder / "ref"), _checkpoint(run_dir)
    assert meta["step"] == 20 and not [k for k in ref if not torch.equal(ref[k], got[k])]
    assert _steps(run_dir) == _steps(folder / "ref")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_over_loopback_match_one_node(resnet_reference):
    # two launchers of one process each meet at a c10d rendezvous on 127.0.0.1, as two machines would; each
    # works in a folder of its own (its own copy of the data, nothing shared), as on machines without a shared disk
    folder, port = resnet_reference, _free_port()
    nodes = []
    for rank in (0, 1):
        (folder / f"node{rank}").mkdir()
        for name in ("train.npz", "test.npz"):
            (folder / f"node{rank}" / name).write_bytes((folder / name).read_bytes())
        launcher = ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={rank}", "--rdzv-backend=c10d",
                    f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=cnnlab-test"]
        nodes.append(_launch(folder / f"node{rank}", launcher, _resnet20("nodes")))
    for node in nodes:
        err = node.communicate(timeout=300)[1]
        assert node.returncode == 0, err[-3000:]
    # the run is where rank 0 ran (c10d numbers the processes itself); the other node wrote nothing
    written = [d for d in (folder / "node0" / "nodes", folder / "node1" / "nodes") if d.exists()]
    assert len(written) == 1 and (written[0] / "summary.json").is_file(), written
    (ref, _), (got, _) = _checkpoint(folder / "ref"), _checkpoint(written[0])
    assert not [k for k in ref if not torch.equal(ref[k], got[k])]  # the same arithmetic as one node: bitwise
    one_node, two_nodes = (json.loads((d / "summary.json").read_text()) for d in (folder / "ref", written[0]))
    assert two_nodes["processes"] == 2 and two_nodes["ranks_identical"] is True
    for key in ("step", "final_test_acc", "final_test_loss", "best_test_acc", "test_images"):
        assert two_nodes[key] == one_node[key], key
