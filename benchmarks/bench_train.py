"""Training speed: cnnlab's default training step against a plain fp32 PyTorch loop, and the loader's rate.

    python benchmarks/bench_train.py [--model resnet20] [--batch-size 128] [--rounds 5] [--steps 8] [--write]

Both loops run in the same process on the same model architecture. Rounds alternate baseline and candidate
so that a busy neighbour slows both alike; the median of the rounds is reported with the load average
(os.getloadavg) seen during the run. ``--write`` replaces the ``## Training`` section of BENCHMARKS.md.

* baseline: fp32, NCHW-contiguous tensors already in memory, SGD(momentum), cross-entropy; no augmentation.
* candidate: ``Trainer.fit`` with the default TrainConfig (bf16 autocast where available, channels_last),
  including batch assembly, crop + flip augmentation, normalisation, metrics lines and the loss check.
* loader: ``BatchLoader.batch`` alone (gather + pad/crop/flip + normalise), images per second.
* bound: torch.profiler's share of the fp32 channels_last step spent in convolution kernels (forward and
  backward). With every other op free, a step could be at most (plain step time / convolution time) faster
  than the plain loop: Amdahl's bound on what any fp32 trick (fusion, compile) can give on this CPU.

Issue 6's target, asserted here (exit status 1 when missed): the default step reaches 2x the plain loop.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from _markdown import write_section
from _rounds import scratch_dir
from cnnlab.data import ArrayDataset, Augment, BatchLoader, channel_stats
from cnnlab.models import create_model
from cnnlab.train import TrainConfig, Trainer
from cnnlab.train.recipes import get_recipe
from cnnlab.train.trainer import native_cpu_bf16, resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
TARGET = 2.0  # issue 6: the default step at >= 2x the plain fp32 loop


def _data(n: int) -> ArrayDataset:
    shared = ROOT.parent / "shared" / "data" / "cifar10_test_first1000.npz"
    if shared.exists():  # real CIFAR-10 images when present; speed does not depend on content
        with np.load(shared) as f:
            x, y = f["x"][:n], f["y"][:n]
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
    return ArrayDataset(np.ascontiguousarray(x), y.astype(np.int64), tuple(str(i) for i in range(10)))


def plain_round(model, opt, x, y, steps: int, dtype: torch.dtype | None = None, label_smoothing: float = 0.0) -> float:
    """Images/s of the plain loop: fp32, or under ``dtype`` autocast."""
    autocast = torch.autocast("cpu", dtype=dtype) if dtype is not None else contextlib.nullcontext()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(model(x).float(), y, label_smoothing=label_smoothing)
        loss.backward()
        opt.step()
    return steps * len(y) / (time.perf_counter() - start)


def conv_seconds_per_step(model, opt, x, y, steps: int) -> float:
    """Seconds per step spent inside convolution ops (forward and backward), from torch.profiler."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        plain_round(model, opt, x, y, steps)
    conv_us = sum(e.self_cpu_time_total for e in prof.key_averages() if "convolution" in e.key)
    return conv_us / 1e6 / steps


def trainer_round(trainer: Trainer, steps: int) -> float:
    """Images/s of the Trainer's default step (fit over ``steps`` more steps)."""
    start = time.perf_counter()
    trainer.fit(until_step=trainer.step + steps)
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def loader_rate(data: ArrayDataset, batch_size: int, batches: int = 50) -> float:
    mean, std = channel_stats(data.x)
    loader = BatchLoader(data, batch_size, mean, std, train=True, augment=Augment())
    g = torch.Generator().manual_seed(0)
    order = loader.epoch_order(0)
    loader.batch(order, 0, g)
    start = time.perf_counter()
    for i in range(batches):
        loader.batch(order, i % len(loader), g)
    return batches * batch_size / (time.perf_counter() - start)


def recipe_run(recipe_name: str, rounds: int, steps: int, **overrides: object) -> dict:
    """The recipe's ``Trainer`` step against its network in a plain loop (fp32 NCHW; and in the recipe's precision
    and layout when that differs), alternating within each round; images/s and per-round ratios."""
    recipe = get_recipe(recipe_name)
    cfg = recipe.config(data="npz", epochs=1000, **overrides)  # a long run: no evaluation, the lr near its start
    dtype = resolve_precision(cfg.precision, resolve_device(cfg.device))
    data = _data(1000)
    data = ArrayDataset(np.tile(data.x, (20, 1, 1, 1)), np.tile(data.y, 20), data.classes)
    mean, std = channel_stats(data.x)
    x = ((torch.from_numpy(data.x[:cfg.batch_size]).float() / 255 - torch.tensor(mean)) / torch.tensor(std))
    x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(data.y[:cfg.batch_size])
    torch.manual_seed(0)
    plain = create_model(cfg.model, num_classes=10)
    loops: dict[str, tuple] = {"plain": (plain, x, None)}
    if dtype is not None or cfg.channels_last:  # the same network in the recipe's precision and layout
        fast = copy.deepcopy(plain)
        if cfg.channels_last:
            fast = fast.to(memory_format=torch.channels_last)
        loops["plain_recipe_precision"] = (fast, x.contiguous(memory_format=torch.channels_last)
                                           if cfg.channels_last else x, dtype)
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay) for k, (m, _, _) in loops.items()}
    trainer = Trainer(cfg, scratch_dir("cnnlab-bench-recipe-") / "run", train_data=data,
                      test_data=data, progress=False)
    for k, (m, xx, dt) in loops.items():
        plain_round(m, opts[k], xx, y, 1, dt, cfg.label_smoothing)  # warm-up
    trainer_round(trainer, 1)
    rates: dict[str, list[float]] = {**{k: [] for k in loops}, "recipe": []}
    for _ in range(rounds):
        for k, (m, xx, dt) in loops.items():
            rates[k].append(plain_round(m, opts[k], xx, y, steps, dt, cfg.label_smoothing))
        rates["recipe"].append(trainer_round(trainer, steps))
    ratios = {k: statistics.median(c / p for c, p in zip(v, rates["plain"])) for k, v in rates.items()}
    return {"recipe": recipe_name, "model": cfg.model, "batch": cfg.batch_size, "steps": steps, "rates": rates,
            "ratios": ratios, "autocast": str(dtype).replace("torch.", "") if dtype is not None else "fp32",
            "channels_last": cfg.channels_last}


def run(model_name: str, batch_size: int, rounds: int, steps: int, compile_too: bool = False) -> dict:
    data = _data(1000)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    mean, std = channel_stats(data.x)
    x = ((torch.from_numpy(data.x[:batch_size]).float() / 255 - torch.tensor(mean)) / torch.tensor(std))
    x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(data.y[:batch_size])
    tmp = scratch_dir("cnnlab-bench-")
    # lr 0.01 keeps random-init training finite; no test-set evaluation inside the timed steps (eval_every);
    # ten copies of the 1000 images make epochs of 78 steps, as on CIFAR-10 the epoch-end checkpoint is rare
    base = TrainConfig(model=model_name, data="npz", batch_size=batch_size, lr=0.01, epochs=1000, eval_every=10**6)
    data = ArrayDataset(np.tile(data.x, (10, 1, 1, 1)), np.tile(data.y, 10), data.classes)
    trainers = {"default": Trainer(base, tmp / "default", train_data=data, test_data=data, progress=False),
                "bf16": Trainer(base.replace(precision="bf16"), tmp / "bf16", train_data=data, test_data=data,
                                progress=False)}
    compile_s = None
    if compile_too:
        trainers["compile"] = Trainer(base.replace(compile=True), tmp / "compile", train_data=data,
                                      test_data=data, progress=False)
        start = time.perf_counter()
        trainer_round(trainers["compile"], 1)  # the first step compiles
        compile_s = time.perf_counter() - start
    plain_round(model, opt, x, y, 2)  # warm-up (allocator, oneDNN primitive caches)
    for t in trainers.values():
        trainer_round(t, 2)
    loads: list[float] = []
    rates: dict[str, list[float]] = {"plain": [], **{k: [] for k in trainers}}
    for _ in range(rounds):
        rates["plain"].append(plain_round(model, opt, x, y, steps))
        for name, t in trainers.items():
            rates[name].append(trainer_round(t, steps))
        loads.append(os.getloadavg()[0])
    ratios = {k: statistics.median(c / p for c, p in zip(rates[k], rates["plain"])) for k in trainers}
    # the fastest fp32 layout's convolutions, on a copy of the model, timed right after a plain round
    fast = create_model(model_name, num_classes=10).to(memory_format=torch.channels_last)
    fast_opt = torch.optim.SGD(fast.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    plain_round(fast, fast_opt, x_cl, y, 2)
    plain_steps, fast_steps, convs = [], [], []
    for _ in range(5):  # back to back within a round, so that the per-round ratio sees one machine load
        plain_steps.append(batch_size / plain_round(model, opt, x, y, steps))
        fast_steps.append(batch_size / plain_round(fast, fast_opt, x_cl, y, steps))
        convs.append(conv_seconds_per_step(fast, fast_opt, x_cl, y, steps))
    bound = {"ratio": statistics.median(p / c for p, c in zip(plain_steps, convs)),
             "share": statistics.median(c / f for c, f in zip(convs, fast_steps)),
             "plain_step": statistics.median(plain_steps), "fast_step": statistics.median(fast_steps),
             "conv": statistics.median(convs)}
    return {"model": model_name, "batch": batch_size, "rounds": rounds, "steps": steps, "rates": rates,
            "ratios": ratios, "bound": bound, "loader": loader_rate(data, batch_size), "load_min": min(loads),
            "load_max": max(loads), "autocast": str(trainers["default"].precision).replace("torch.", ""),
            "native_bf16": native_cpu_bf16(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cores": os.cpu_count(), "compile_s": compile_s}


def markdown(r: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    rates, med = r["rates"], {k: statistics.median(v) for k, v in r["rates"].items()}
    default_mode = "fp32" if r["autocast"] == "None" else f"autocast {r['autocast']}"
    rows = [("plain fp32 PyTorch loop (NCHW, one batch already in memory, no augmentation)", "plain"),
            (f"cnnlab default `Trainer` ({default_mode}, channels_last, augmentation, metrics)", "default"),
            ("`Trainer` with `precision=bf16` (bfloat16 autocast, channels_last)", "bf16"),
            ("`Trainer` with `compile=True` (default precision, channels_last, torch.compile)", "compile")]
    lines = [
        "## Training",
        "",
        f"`python benchmarks/bench_train.py --write` ({when}; torch {r['torch']}, {r['cores']} cores, "
        f"{r['threads']} threads; CPU has native bfloat16: {'yes' if r['native_bf16'] else 'no'}; "
        f"1-minute load average during the run {r['load_min']:.1f}-{r['load_max']:.1f}).",
        f"{r['model']}, batch {r['batch']}, full training step (forward, backward, SGD update); median of "
        f"{r['rounds']} rounds of {r['steps']} steps, the loops alternating within each round.",
        "",
        "| loop | images/s (median) | vs plain (median of per-round ratios) | all rounds |",
        "| --- | ---: | ---: | --- |",
    ]
    for label, key in rows:
        if key not in rates:
            continue
        ratio = "1.00x" if key == "plain" else f"{r['ratios'][key]:.2f}x"
        lines.append(f"| {label} | {med[key]:.0f} | {ratio} | {', '.join(f'{v:.0f}' for v in rates[key])} |")
    lines += [
        "",
        f"Loader alone (`BatchLoader.batch`: gather, pad 4 + crop + flip, normalise): {r['loader']:.0f} images/s, "
        f"{r['loader'] / med['default']:.0f}x what the default step consumes.",
    ]
    b = r["bound"]
    lines.append(
        f"Where the time goes (torch.profiler, fp32 channels_last step): convolutions forward + backward take "
        f"{b['conv'] * 1e3:.0f} ms of a {b['fast_step'] * 1e3:.0f} ms step ({b['share']:.0%}); the "
        f"plain step takes {b['plain_step'] * 1e3:.0f} ms (medians of 5 rounds). Were every other op free, an fp32 "
        f"step could run at most {b['ratio']:.2f}x the plain loop (Amdahl's bound): 2x needs faster convolutions, i.e. "
        f"lower precision computed natively.")
    if r["compile_s"] is not None:
        lines.append(f"`torch.compile` took {r['compile_s']:.0f} s before its first step (not counted above).")
    target = "meets" if r["ratios"]["default"] >= TARGET else "does NOT meet"
    lines += [
        f"The default {target} the issue's target of 2x the plain fp32 loop on this machine. `precision=auto` "
        f"uses bfloat16 only where the CPU computes it natively (AVX512-BF16 or AMX) or on a GPU that has it; "
        f"without it oneDNN emulates bfloat16 and the bf16 row shows what that costs.",
        "",
    ]
    if r.get("recipe"):
        lines += recipe_markdown(r["recipe"], r["rounds"])[1:]
    return "\n".join(lines)


def recipe_markdown(q: dict, rounds: int) -> list[str]:
    """The table of the recipe's step against the same network in a plain loop."""
    med = {k: statistics.median(v) for k, v in q["rates"].items()}
    layout = "channels_last" if q["channels_last"] else "NCHW"
    rows = [("plain fp32 PyTorch loop (NCHW, one batch already in memory, no augmentation)", "plain"),
            (f"plain loop in the recipe's precision and layout (autocast {q['autocast']}, {layout})",
             "plain_recipe_precision"),
            (f"`Trainer` with `--recipe {q['recipe']}` (autocast {q['autocast']}, {layout}; whitened first conv, "
             f"reflect crops, alternating flips, label smoothing, per-group lr, EMA / Lookahead every 5 steps, "
             f"metrics)", "recipe")]
    lines = ["", f"The `{q['recipe']}` recipe's step against the same network ({q['model']}, batch {q['batch']}, "
                 f"Nesterov SGD, label smoothing as the recipe) in a plain loop; median of {rounds} rounds of "
                 f"{q['steps']} steps, alternating within each round:", "",
             "| loop | images/s (median) | vs plain fp32 (median of per-round ratios) | all rounds |",
             "| --- | ---: | ---: | --- |"]
    for label, key in rows:
        if key in q["rates"]:
            lines.append(f"| {label} | {med[key]:.0f} | {q['ratios'][key]:.2f}x | "
                         f"{', '.join(f'{v:.0f}' for v in q['rates'][key])} |")
    if "plain_recipe_precision" in med:
        lines.append(f"The recipe's `Trainer` step runs at {med['recipe'] / med['plain_recipe_precision']:.2f}x the "
                     f"plain loop in the same precision and layout: what its extra work (augmentation, EMA, metrics) "
                     f"costs or saves.")
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (minutes to compile)")
    parser.add_argument("--recipe", default="cifar10-94", help="also time this recipe's step against its network in "
                                                                "a plain loop ('none': skip)")
    parser.add_argument("--recipe-steps", type=int, default=2, help="steps per round for the recipe's comparison")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run(args.model, args.batch_size, args.rounds, args.steps, args.compile)
    if args.recipe != "none":
        result["recipe"] = recipe_run(args.recipe, args.rounds, args.recipe_steps)
    text = markdown(result)
    print(text)
    if args.write:
        write_section("## Training", text)
    return 0 if result["ratios"]["default"] >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
