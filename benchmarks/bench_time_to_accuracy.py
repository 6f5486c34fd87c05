"""Time to accuracy: a recipe end to end on CIFAR-10, N seeds, one row per attempt in BENCHMARKS.md (issue 12).

    python benchmarks/bench_time_to_accuracy.py [--recipe cifar10-94] [--seeds 3] [--target 0.94]
        [--time-limit-s S] [--set KEY=VALUE ...] [--train-file F] [--test-file F] [--extra-test-file F]
        [--smoke] [--benchmarks-file PATH] [--runs-dir DIR]

Per seed, one clock (``wall``) covers loading the training and test files, building the network, the whole
training (``Trainer`` with the recipe: whitening init, every step, its checkpoints) and the final evaluation on
the test file, the 1,000 exact CIFAR-10 test images. The run's checkpoint is then evaluated on the extra test
file (the 10,000 test images re-encoded as JPEG-75) on a clock of its own.

Before the runs the script measures this machine's matmul peak in the precision the recipe trains in (bf16
where autocast picks it, else fp32): model-FLOP utilisation (MFU) = training images/s x 6 x the network's
multiply-adds per image (forward 2 FLOPs per MAC, backward twice that) / that peak. Epochs, steps and training
FLOPs are machine-independent: they compare the recipe with airbench94 (9.9 epochs, 3.6e14 FLOPs) on sample
efficiency, not only on wall time.

Every attempt appends one row to ``## Time to accuracy`` in BENCHMARKS.md, missed targets and failed runs too
(the error goes in the row). Exit status 1 when a run failed, the mean accuracy on the exact test images is
below ``--target``, or the mean wall time is above ``--time-limit-s`` (default: 20 minutes on a CPU with native
bfloat16, none without: there the time is reported, not judged).

``--smoke`` checks the plumbing in seconds: 256 training images, 3 steps of 64, 100 test images of each file
(spread over it); its row goes to ``--benchmarks-file`` only (nowhere when not given), never into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from _markdown import BENCHMARKS_MD, publish_row
from cnnlab.analysis import analyze
from cnnlab.data import ArrayDataset, load_dataset
from cnnlab.experiments.core import cpu_model
from cnnlab.train import Trainer, evaluate_run, parse_override
from cnnlab.train.recipes import get_recipe
from cnnlab.train.trainer import native_cpu_bf16, resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SECTION = "## Time to accuracy"
PREAMBLE = (
    "`python benchmarks/bench_time_to_accuracy.py` appends one row per attempt (failed ones too). Wall: per seed, "
    "loading + training + the final evaluation on the 1,000 exact test images (mean ± sd over seeds); JPEG-75: "
    "the 10,000 re-encoded test images, evaluated afterwards. MFU: training images/s x 6 x MACs per image over "
    "the matmul peak measured in the same process, in the training precision. airbench94 (arXiv:2404.00498): "
    "94.01% in 9.9 epochs, 3.6e14 FLOPs, 3.83 s on an A100.")
HEADER = ("| date | CPU | native bf16 | load | torch, threads | recipe | seeds | wall s | exact 1000 acc | JPEG-75 acc "
          "| epochs (steps) | train img/s | train PFLOP | MFU (peak) | target | result |\n"
          "| --- | --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")


def matmul_peak(dtype: torch.dtype, n: int = 2048, seconds: float = 3.0) -> float:
    """Best FLOP/s of n x n matmuls in ``dtype`` over rounds of about ``seconds / 5`` each."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up: oneDNN / BLAS set-up
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds / 5:
            a @ b
            count += 1
        best = max(best, 2 * n ** 3 * count / (time.perf_counter() - start))
    return best


def train_images_per_s(run_dir: Path, batch_size: int) -> float | None:
    """Training images per second over the whole run, from the epoch lines of metrics.jsonl."""
    seconds, images, last_step = 0.0, 0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "epoch" and record.get("images_per_s"):
            n = (record["step"] - last_step) * batch_size
            seconds += n / record["images_per_s"]
            images += n
            last_step = record["step"]
    return images / seconds if seconds else None


def spaced(data: ArrayDataset, n: int) -> ArrayDataset:
    """``n`` images spread over the whole set (the JPEG-75 file is sorted by class: its first 100 are planes)."""
    step = max(1, len(data) // n)
    return dataclasses.replace(data, x=data.x[::step][:n], y=data.y[::step][:n])


def one_seed(args: argparse.Namespace, overrides: dict[str, Any], seed: int, out: Path) -> dict[str, Any]:
    """One run: the timed part (load, train, evaluate), then the JPEG-75 evaluation."""
    recipe = get_recipe(args.recipe)
    start = time.perf_counter()
    train = load_dataset("npz", "train", file=args.train_file)
    test = load_dataset("npz", "test", file=args.test_file)
    if args.smoke:
        train, test = train.subset(256), spaced(test, 100)
    cfg = recipe.config(data="npz", train_file=str(args.train_file), test_file=str(args.test_file), seed=seed,
                        **overrides)
    summary = Trainer(cfg, out, train_data=train, test_data=test, progress=False).fit()
    wall = time.perf_counter() - start
    result = {"seed": seed, "wall_s": wall, "acc": summary["final_test_acc"], "steps": summary["step"],
              "epochs": cfg.epochs, "batch_size": cfg.batch_size, "model": cfg.model,
              "images_per_s": train_images_per_s(out, cfg.batch_size), "precision": cfg.precision}
    if args.extra_test_file:
        start = time.perf_counter()
        extra = load_dataset("npz", "test", file=args.extra_test_file)
        extra = spaced(extra, 100) if args.smoke else extra
        result["extra_acc"] = evaluate_run(out, "last", test_data=extra)["accuracy"]
        result["extra_s"] = time.perf_counter() - start
    return result


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "n/a"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def summarize(args: argparse.Namespace, runs: list[dict[str, Any]], errors: list[str], env: dict[str, Any],
              limit_s: float | None) -> tuple[str, bool]:
    """The table row and whether the target was met."""
    accs = [r["acc"] for r in runs if r["acc"] is not None]
    walls = [r["wall_s"] for r in runs]
    extra = [r["extra_acc"] for r in runs if "extra_acc" in r]
    ips = [r["images_per_s"] for r in runs if r["images_per_s"]]
    mean_acc = statistics.mean(accs) if accs else 0.0
    met = not errors and len(accs) == args.seeds and mean_acc >= args.target and (
        limit_s is None or statistics.mean(walls) <= limit_s)
    first = runs[0] if runs else {}
    images = sum(r["steps"] * r["batch_size"] for r in runs) / max(1, len(runs))
    pflop = 6 * env["macs"] * images / 1e15
    mfu = (statistics.mean(ips) * 6 * env["macs"] / env["peak"]) if ips and env["peak"] else None
    acc_text = "n/a" if not accs else (f"{_spread([a * 100 for a in accs], '.2f')}% "
                                       f"({min(accs) * 100:.2f}-{max(accs) * 100:.2f})")
    target = f"≥ {args.target * 100:.1f}%" + (f" in ≤ {limit_s / 60:.0f} min" if limit_s else " (time reported)")
    result = "met" if met else "missed"
    if errors:
        result = "FAILED: " + "; ".join(errors)
    settings = f"{args.recipe}" + (f" {' '.join(args.set)}" if args.set else "") + (" --smoke" if args.smoke else "")
    cells = [
        time.strftime("%Y-%m-%d %H:%M"), env["cpu"], "yes" if env["native_bf16"] else "no",
        f"{env['load_min']:.1f}-{env['load_max']:.1f}", f"{torch.__version__}, {torch.get_num_threads()}",
        f"`{settings}`", ", ".join(str(r["seed"]) for r in runs) or "none", _spread(walls, ".0f"), acc_text,
        _spread([e * 100 for e in extra], ".2f") + ("%" if extra else ""),
        f"{first.get('epochs', 'n/a')} ({first.get('steps', 'n/a')})", _spread(ips, ".0f"), f"{pflop:.3f}",
        f"{mfu:.1%} ({env['peak'] / 1e9:.0f} GFLOP/s {env['peak_dtype']})" if mfu is not None else "n/a",
        target, result,
    ]
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |", met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cifar10-94")
    parser.add_argument("--seeds", type=int, help="how many seeds: first-seed..first-seed+N-1 (default 3; --smoke: 1)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="start at this seed (continue an earlier attempt's seeds in a new row)")
    parser.add_argument("--target", type=float, default=0.94, help="mean accuracy on the exact test images")
    parser.add_argument("--time-limit-s", type=float, help="mean wall seconds per run allowed (default: 1200 with "
                                                          "native bf16, none without; 0: none)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe key")
    parser.add_argument("--train-file", type=Path, default=DATA / "cifar10_train.npz")
    parser.add_argument("--test-file", type=Path, default=DATA / "cifar10_test_first1000.npz")
    parser.add_argument("--extra-test-file", type=Path, default=DATA / "cifar10_test_jpeg75.npz")
    parser.add_argument("--smoke", action="store_true", help="a few steps on a tiny subset: checks the plumbing")
    parser.add_argument("--benchmarks-file", type=Path, help=f"where the row goes (default {BENCHMARKS_MD.name}; "
                                                             f"with --smoke: nowhere unless given)")
    parser.add_argument("--runs-dir", type=Path, help="where the run directories go (default: a temp folder)")
    args = parser.parse_args(argv)
    overrides = dict(parse_override(text) for text in args.set)
    if args.smoke:
        overrides = {"batch_size": 64, "max_steps": 3, "eval_batch_size": 100, **overrides}
    args.seeds = args.seeds if args.seeds is not None else (1 if args.smoke else 3)

    cfg = get_recipe(args.recipe).config(data="npz", **overrides)
    precision = resolve_precision(cfg.precision, resolve_device(cfg.device))
    native = native_cpu_bf16()
    limit_s = args.time_limit_s if args.time_limit_s is not None else (1200.0 if native else None)
    limit_s = limit_s or None
    peak_dtype = precision or torch.float32
    n = 256 if args.smoke else 2048
    env = {"cpu": cpu_model(), "native_bf16": native, "peak_dtype": str(peak_dtype).replace("torch.", ""),
           "peak": matmul_peak(peak_dtype, n, 0.2 if args.smoke else 3.0),
           "macs": analyze(cfg.model, (3, 32, 32)).macs}
    loads = [os.getloadavg()[0]]
    runs, errors = [], []
    runs_dir = args.runs_dir or Path(tempfile.mkdtemp(prefix="cnnlab-tta-"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        try:
            runs.append(one_seed(args, overrides, seed, runs_dir / f"{args.recipe}-{stamp}-seed{seed}"))
            r = runs[-1]
            print(f"seed {seed}: {r['wall_s']:.0f} s, exact-1000 accuracy {r['acc']:.4f}"
                  + (f", JPEG-75 {r['extra_acc']:.4f} ({r['extra_s']:.0f} s)" if "extra_acc" in r else ""),
                  flush=True)
        except Exception as exc:  # every attempt goes into the table, a failed one with its error
            errors.append(f"seed {seed}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(errors[-1], file=sys.stderr, flush=True)
        loads.append(os.getloadavg()[0])
    env.update(load_min=min(loads), load_max=max(loads))
    row, met = summarize(args, runs, errors, env, limit_s)
    publish_row(SECTION, PREAMBLE, HEADER, row, args.benchmarks_file or (None if args.smoke else BENCHMARKS_MD))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
