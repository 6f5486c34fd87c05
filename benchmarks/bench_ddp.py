"""Distributed training on one machine: images/s of 1 process against 2 (torchrun + DDP, gloo, 1 thread each),
and the share of the 2-process step spent in the gradient all-reduce (issue 15).

    python benchmarks/bench_ddp.py [--model resnet20] [--batch-size 128] [--rounds 5] [--steps 10]
        [--share-rounds 3] [--share-steps 4] [--smoke] [--benchmarks-file PATH]

Each round launches ``torchrun --standalone --nproc_per_node=N`` on this script for N = 1 then N = 2, so a busy
neighbour slows both alike. In each launch:

* speed: ``Trainer.fit`` (the default TrainConfig: precision auto, channels_last, crop + flip augmentation,
  metrics) on in-memory CIFAR-shaped data with the same global batch; images/s over ``--steps`` steps after 2
  warm-up steps, from the per-step times the trainer logs in metrics.jsonl (the final checkpoint is not in them).
* all-reduce share (N = 2 only): a plain DDP step (forward, backward, SGD) on a fixed batch, timed in blocks with
  gradient synchronisation and inside DDP's ``no_sync()`` (no all-reduce), alternating; share = 1 - no_sync / sync
  time per step (the slower rank's), the median over blocks. It includes the wait for the slower rank, which is
  what synchronisation costs; DDP's per-forward broadcast of BatchNorm buffers is in both and so not counted.

Reported: medians over rounds, the speed-up as the median of per-round ratios, the CPU model, whether it computes
bfloat16 natively, and the 1-minute load average seen during the run. A row is appended to ``## Distributed
training`` in BENCHMARKS.md. ``--smoke`` checks the plumbing in seconds (batch 16, 2 steps, 1 round) and writes only
to ``--benchmarks-file`` when given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from _markdown import BENCHMARKS_MD, publish_row

SECTION = "## Distributed training"
PREAMBLE = (
    "`python benchmarks/bench_ddp.py` appends one row per run. torchrun + DistributedDataParallel (gloo) on one "
    "machine, 1 thread per process, the same global batch split over the processes. Images/s: `Trainer.fit`'s "
    "own per-step times (default config, augmentation included), median over rounds that alternate 1 and 2 "
    "processes. All-reduce share: 1 - (step time inside DDP's `no_sync()`) / (step time with gradient "
    "synchronisation), a plain DDP step, waiting for the slower rank included.")
HEADER = ("| date | CPU | native bf16 | load | torch | model, global batch, precision | 1 process img/s "
          "| 2 processes img/s | speed-up | all-reduce share (2 processes) | rounds |\n"
          "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
WARMUP = 2


# ---------------------------------------------------------------- one launch (every rank runs this)
def _data(n: int):
    from cnnlab.data import ArrayDataset

    rng = np.random.default_rng(0)  # speed does not depend on the pixels
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return ArrayDataset(x, rng.integers(0, 10, n).astype(np.int64), tuple(str(i) for i in range(10)))


def _trainer_rate(args: argparse.Namespace, world: int) -> float:
    """Global images/s of ``Trainer.fit`` over ``args.steps`` steps after the warm-up (rank 0's log)."""
    from cnnlab.train import TrainConfig, Trainer

    steps = WARMUP + args.steps
    # one epoch longer than the run: no epoch-end checkpoint or evaluation inside the timed steps
    train = _data(args.batch_size * (steps + 1))
    cfg = TrainConfig(model=args.model, data="npz", batch_size=args.batch_size, lr=0.01, epochs=1,
                      eval_every=10**6, log_every=1)
    trainer = Trainer(cfg, args.run_dir, train_data=train, test_data=_data(world * 2), progress=False)
    trainer.fit(until_step=steps)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0.0
    lines = [json.loads(line) for line in (Path(args.run_dir) / "metrics.jsonl").read_text().splitlines()]
    times = [args.batch_size / r["images_per_s"] for r in lines if r["kind"] == "step" and r["step"] > WARMUP]
    return len(times) * args.batch_size / sum(times)


def _allreduce_share(args: argparse.Namespace, world: int) -> float:
    """1 - (no_sync step time) / (synchronised step time), the median over alternating blocks."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from cnnlab.models import create_model
    from cnnlab.train.trainer import resolve_precision

    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10).to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    local = args.batch_size // world
    x = torch.randn(local, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (local,))
    precision = resolve_precision("auto", torch.device("cpu"))

    def block(sync: bool, steps: int) -> float:
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            with contextlib.nullcontext() if sync else net.no_sync():
                with torch.autocast("cpu", dtype=precision) if precision else contextlib.nullcontext():
                    loss = F.cross_entropy(net(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
            opt.step()
        t = torch.tensor((time.perf_counter() - start) / steps, dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)  # the slower rank sets the pace
        return float(t)

    block(True, 1)  # warm-up: DDP rebuilds its buckets after the first step
    block(False, 1)
    shares = []
    for _ in range(args.share_rounds):
        synced, unsynced = block(True, args.share_steps), block(False, args.share_steps)
        shares.append(1 - unsynced / synced)
    return statistics.median(shares)


def worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        dist.init_process_group("gloo")  # made here, so the Trainer joins it and leaves it open
    result: dict[str, Any] = {"world": world, "images_per_s": _trainer_rate(args, world)}
    if world > 1:
        result["allreduce_share"] = _allreduce_share(args, world)
        dist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        from cnnlab.train.trainer import resolve_precision

        precision = resolve_precision("auto", torch.device("cpu"))
        result["precision"] = str(precision).replace("torch.", "") if precision else "fp32"
        Path(args.result).write_text(json.dumps(result))


# ---------------------------------------------------------------- the driver
def launch(args: argparse.Namespace, processes: int, folder: Path) -> dict[str, Any]:
    """One ``torchrun --nproc_per_node=processes`` of this script's worker; rank 0's result."""
    result, run_dir = folder / f"result-{processes}.json", folder / f"run-{processes}"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               __file__, "--worker", "--result", str(result), "--run-dir", str(run_dir), "--model", args.model,
               "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--share-rounds",
               str(args.share_rounds), "--share-steps", str(args.share_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{processes}-process launch failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(result.read_text())


def summarize(args: argparse.Namespace, rounds: list[dict[int, dict[str, Any]]], env: dict[str, Any]) -> str:
    """The BENCHMARKS.md row."""
    one = [r[1]["images_per_s"] for r in rounds]
    two = [r[2]["images_per_s"] for r in rounds]
    speedup = statistics.median(b / a for a, b in zip(one, two))
    share = statistics.median(r[2]["allreduce_share"] for r in rounds)
    every = "; ".join(f"{a:.0f} / {b:.0f}" for a, b in zip(one, two))
    return (f"| {time.strftime('%Y-%m-%d %H:%M')} | {env['cpu']}, {os.cpu_count()} cores "
            f"| {'yes' if env['native_bf16'] else 'no'} | {env['load_min']:.1f}-{env['load_max']:.1f} "
            f"| {torch.__version__} | {args.model}, {args.batch_size}, {rounds[0][1]['precision']} "
            f"| {statistics.median(one):.0f} "
            f"| {statistics.median(two):.0f} | {speedup:.2f}x | {share:.0%} "
            f"| {len(rounds)} of {args.steps} steps (1 / 2 processes: {every}) |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch (split over the processes)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed Trainer steps per launch")
    parser.add_argument("--share-rounds", type=int, default=3, help="sync / no_sync block pairs per launch")
    parser.add_argument("--share-steps", type=int, default=4, help="steps per sync or no_sync block")
    parser.add_argument("--smoke", action="store_true", help="tiny settings; writes only to --benchmarks-file")
    parser.add_argument("--benchmarks-file", type=Path)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if args.smoke:
        args.batch_size, args.steps, args.rounds, args.share_rounds, args.share_steps = 16, 2, 1, 1, 1
    from cnnlab.experiments.core import cpu_model
    from cnnlab.train.trainer import native_cpu_bf16

    loads = [os.getloadavg()[0]]
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="cnnlab-bench-ddp-") as tmp:
            rounds.append({n: launch(args, n, Path(tmp)) for n in (1, 2)})
        loads.append(os.getloadavg()[0])
        r = rounds[-1]
        print(f"round {i + 1}: 1 process {r[1]['images_per_s']:.0f} img/s, 2 processes {r[2]['images_per_s']:.0f} "
              f"img/s, all-reduce {r[2]['allreduce_share']:.0%} of the 2-process step", flush=True)
    env = {"cpu": cpu_model(), "native_bf16": native_cpu_bf16(), "load_min": min(loads), "load_max": max(loads)}
    row = summarize(args, rounds, env)
    publish_row(SECTION, PREAMBLE, HEADER, row, args.benchmarks_file or (None if args.smoke else BENCHMARKS_MD))
    return 0


if __name__ == "__main__":
    sys.exit(main())
