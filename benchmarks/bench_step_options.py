"""The cifar10-94 recipe's training step: where its time goes, and what each speed option changes (issue 12).

    python benchmarks/bench_step_options.py [--rounds 3] [--steps 2] [--images 20000] [--only NAME,...] [--write]

Every option runs the recipe's own step (``Trainer.fit`` with the recipe's config: batch assembly, flips and
crops, the forward and backward pass, the optimiser step, the EMA / Lookahead update) on fastcifar_vgg, in one
process. A round times ``--steps`` steps of the recipe as it is (the baseline) and of every option, in an order
that rotates from round to round; an option's figure is the median over rounds of (its images/s / the
baseline's images/s in the same round), so that a busy neighbour slows both sides of a ratio alike.

The options are the ones issue 12 names: torch.compile, channels_last (off), the precision (bf16 autocast vs
fp32, and fp32 with oneDNN computing its convolutions and matmuls in bf16), batch size, the optimiser's
``foreach`` and ``fused`` implementations, ``torch.backends.mkldnn`` settings and the intra-op thread count.
Process-wide flags are set around their option's steps only and restored after; the optimiser variants switch
the recipe's SGD param groups to that implementation after the Trainer made them.

torch.profiler then records ``--steps`` steps of the baseline: the ops with the most self CPU time per step.
``--write`` replaces the ``## Training step options`` section of BENCHMARKS.md. Exit status 1 when
``precision="auto"`` did not pick the faster precision of the two on this machine (by more than 5%).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from _markdown import write_section
from _rounds import rotated, scratch_dir
from cnnlab.data import ArrayDataset
from cnnlab.experiments.core import cpu_model
from cnnlab.train import Trainer
from cnnlab.train.recipes import get_recipe
from cnnlab.train.trainer import native_cpu_bf16, resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Training step options"
RECIPE = "cifar10-94"
SLOW = 4.0  # see run(): options this much slower than the recipe get one step per round
AUTO_MARGIN = 1.05
IMAGES = 20_000  # the other precision must be this much faster before auto's choice counts as wrong


@contextlib.contextmanager
def setting(owner: Any, name: str, value: Any) -> Iterator[None]:
    """``owner.name = value`` for the duration of the block, then the old value again."""
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def onednn_fp32_in_bf16() -> Iterator[None]:
    """fp32 tensors, with oneDNN allowed to compute convolutions and matmuls in bfloat16."""
    mkldnn = torch.backends.mkldnn
    with setting(mkldnn.conv, "fp32_precision", "bf16"), setting(mkldnn.matmul, "fp32_precision", "bf16"):
        yield


def optimizer_impl(kind: str) -> Callable[[Trainer], None]:
    """Switch the Trainer's optimiser groups to ``kind`` ("foreach" or "fused")."""
    def apply(trainer: Trainer) -> None:
        for group in trainer.optimizer.param_groups:
            group["foreach"], group["fused"] = kind == "foreach", kind == "fused"
    return apply


@dataclass(frozen=True)
class Option:
    """One way to run the recipe's step: config keys, a process-wide flag around its steps, a change to the
    Trainer after set-up."""

    name: str
    label: str
    config: dict[str, Any] = field(default_factory=dict)
    flags: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    setup: Callable[[Trainer], None] | None = None


def options(auto_dtype: torch.dtype | None, batch_size: int = 1024) -> list[Option]:
    """The options of issue 12; the first is the recipe as it is. The explicit precision that auto did not
    pick is one of them, so that auto's choice is measured against the alternative."""
    auto = "bf16 autocast" if auto_dtype is not None else "fp32"
    other = ("fp32", "precision=fp32: no autocast") if auto_dtype is not None else \
        ("bf16", "precision=bf16: bfloat16 autocast")
    return [
        Option("recipe", f"the recipe as it is (precision=auto: {auto}, channels_last, batch {batch_size}, SGD "
                         f"for-loop, {torch.get_num_threads()} threads, oneDNN on)"),
        Option(f"precision={other[0]}", other[1], {"precision": other[0]}),
        Option("fp32+onednn-bf16", "precision=fp32 with torch.backends.mkldnn conv/matmul fp32_precision='bf16' "
                                   "(oneDNN computes the fp32 convolutions in bf16)", {"precision": "fp32"},
               flags=onednn_fp32_in_bf16),
        Option("nchw", "channels_last=False (NCHW tensors and weights)", {"channels_last": False}),
        Option("compile", "compile=True (torch.compile, default mode); compile time not counted",
               {"compile": True}),
        Option("batch=512", "batch_size=512 (images/s; the recipe's schedule is tuned for 1024)",
               {"batch_size": 512}),
        Option("batch=2048", "batch_size=2048", {"batch_size": 2048}),
        Option("sgd-foreach", "SGD foreach=True (multi-tensor update)", setup=optimizer_impl("foreach")),
        Option("sgd-fused", "SGD fused=True (one fused kernel)", setup=optimizer_impl("fused")),
        Option("mkldnn-off", "torch.backends.mkldnn.enabled=False (PyTorch's own convolution kernels)",
               flags=lambda: setting(torch.backends.mkldnn, "enabled", False)),
        Option("mkldnn-deterministic", "torch.backends.mkldnn.deterministic=True",
               flags=lambda: setting(torch.backends.mkldnn, "deterministic", True)),
        Option("threads=1", "torch.set_num_threads(1)", flags=lambda: threads(1)),
    ]


def step_data(n: int) -> ArrayDataset:
    """``n`` CIFAR-10 images (the 1,000 exact test images repeated) or random ones when the file is absent:
    a step's speed does not depend on the pixels, and whitening needs images, not the 50,000."""
    shared = ROOT.parent / "shared" / "data" / "cifar10_test_first1000.npz"
    if shared.exists():
        with np.load(shared) as f:
            x, y = f["x"], f["y"]
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (1000, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 1000)
    reps = -(-n // len(x))
    x, y = np.tile(x, (reps, 1, 1, 1))[:n], np.tile(y, reps)[:n]
    return ArrayDataset(np.ascontiguousarray(x), y.astype(np.int64), tuple(str(i) for i in range(10)))


def build(option: Option, data: ArrayDataset, out: Path, overrides: dict[str, Any]) -> Trainer:
    # a long run: the schedule stays near its start, and no evaluation runs inside the timed steps
    cfg = get_recipe(RECIPE).config(data="npz", epochs=1000, **{**overrides, **option.config})
    with option.flags():
        trainer = Trainer(cfg, out / option.name, train_data=data, test_data=data, progress=False)
    if option.setup is not None:
        option.setup(trainer)
    return trainer


def timed_steps(trainer: Trainer, option: Option, steps: int) -> float:
    """Images/s over ``steps`` more steps of ``trainer`` under the option's flags."""
    with option.flags():
        start = time.perf_counter()
        trainer.fit(until_step=trainer.step + steps)
        elapsed = time.perf_counter() - start
    return steps * trainer.config.batch_size / elapsed


def per_round_ratios(rates: dict[str, list[float]], baseline: str = "recipe") -> dict[str, list[float]]:
    """Each option's images/s over the baseline's, round by round."""
    return {name: [v / b for v, b in zip(values, rates[baseline])] for name, values in rates.items()}


def top_ops(trainer: Trainer, steps: int, n: int = 15) -> dict[str, Any]:
    """torch.profiler over ``steps`` steps of ``trainer``: the ``n`` ops with the most self CPU time."""
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        trainer.fit(until_step=trainer.step + steps)
    wall = time.perf_counter() - start
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [{"op": e.key, "ms_per_step": e.self_cpu_time_total / 1e3 / steps, "share": e.self_cpu_time_total / total,
             "calls_per_step": e.count / steps} for e in events[:n]]
    conv = sum(e.self_cpu_time_total for e in events if "convolution" in e.key)
    return {"rows": rows, "total_ms_per_step": total / 1e3 / steps, "wall_ms_per_step": wall * 1e3 / steps,
            "conv_share": conv / total if total else 0.0}


def run(rounds: int, steps: int, images: int, only: list[str] | None, overrides: dict[str, Any]) -> dict[str, Any]:
    data = step_data(images)
    cfg = get_recipe(RECIPE).config(data="npz", **overrides)
    auto_dtype = resolve_precision(cfg.precision, resolve_device(cfg.device))
    chosen = [o for o in options(auto_dtype, cfg.batch_size) if o.name == "recipe" or only is None or o.name in only]
    unknown = sorted(set(only or ()) - {o.name for o in options(auto_dtype)})
    if unknown:
        raise SystemExit(f"--only: unknown option(s) {', '.join(unknown)}; known: "
                         f"{', '.join(o.name for o in options(auto_dtype))}")
    tmp = scratch_dir("cnnlab-step-options-")
    trainers, warm_s, errors = {}, {}, {}
    for option in chosen:
        start = time.perf_counter()
        try:
            trainers[option.name] = build(option, data, tmp, overrides)
            timed_steps(trainers[option.name], option, 1)  # warm-up: oneDNN primitives, allocator, compilation
        except Exception as exc:  # an option that cannot run here (a compiler missing, say) is a row, not a crash
            if option.name == "recipe":
                raise
            trainers.pop(option.name, None)
            errors[option.name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
            print(f"{option.name}: failed: {errors[option.name]}", file=sys.stderr, flush=True)
        warm_s[option.name] = time.perf_counter() - start
    working = [o for o in chosen if o.name in trainers]
    # an option whose warm-up step took over SLOW x the recipe's runs one step per round: the run stays short
    per_round = {o.name: steps if warm_s[o.name] <= SLOW * warm_s["recipe"] else 1 for o in working}
    rates: dict[str, list[float]] = {o.name: [] for o in working}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for option in rotated(working, r):
            rates[option.name].append(timed_steps(trainers[option.name], option, per_round[option.name]))
        loads.append(os.getloadavg()[0])
    profiled = top_ops(trainers["recipe"], steps)
    return {"options": chosen, "rates": rates, "ratios": per_round_ratios(rates), "warm_s": warm_s,
            "errors": errors, "per_round": per_round,
            "profile": profiled, "auto": "bf16" if auto_dtype is not None else "fp32", "rounds": rounds,
            "steps": steps, "images": images, "batch": cfg.batch_size, "load_min": min(loads),
            "load_max": max(loads), "cpu": cpu_model(), "native_bf16": native_cpu_bf16(),
            "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cores": os.cpu_count(), "overrides": overrides}


def auto_verdict(result: dict[str, Any]) -> tuple[bool, str]:
    """Whether precision="auto" picked the faster precision here, and the sentence that says so."""
    other = next((name for name in result["ratios"] if name.startswith("precision=")), None)
    if other is None:
        return True, "The other precision was not measured in this run (--only), so auto's choice was not checked."
    ratio = statistics.median(result["ratios"][other])
    picked = result["auto"]
    ok = ratio <= AUTO_MARGIN
    verdict = "the faster of the two, as it should" if ratio < 1 else (
        "within 5% of the other, a tie" if ok else "NOT the faster: the default should change")
    text = (f"`precision=\"auto\"` picked {picked} on this CPU (native bf16: "
            f"{'yes' if result['native_bf16'] else 'no'}); `{other}` ran at {ratio:.2f}x its speed: auto's choice "
            f"is {verdict}.")
    if "fp32+onednn-bf16" in result["ratios"]:  # not a precision= value, but the same trade by other means
        text += (f" fp32 with oneDNN computing in bf16 (not a `precision` value) ran at "
                 f"{statistics.median(result['ratios']['fp32+onednn-bf16']):.2f}x.")
    return ok, text


def markdown(result: dict[str, Any]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    rates, ratios = result["rates"], result["ratios"]
    base = statistics.median(rates["recipe"])
    extra = "".join(f" --{k.replace('_', '-')} {v}" for k, v in result["overrides"].items())
    extra += f" --images {result['images']}" if result["images"] != IMAGES else ""
    lines = [
        SECTION, "",
        f"`python benchmarks/bench_step_options.py --rounds {result['rounds']} --steps {result['steps']}{extra} "
        f"--write` ({when}): {result['cpu']}, {result['cores']} cores, {result['threads']} threads; native bf16 "
        f"(AVX512-BF16 or AMX): {'yes' if result['native_bf16'] else 'no'} "
        f"(`torch.cpu._is_avx512_bf16_supported()`: {result['avx512_bf16']}); torch {result['torch']}; 1-minute "
        f"load average during the run {result['load_min']:.1f}-{result['load_max']:.1f}.",
        f"The `{RECIPE}` recipe's training step (fastcifar_vgg, `Trainer.fit`: batch assembly and augmentation, "
        f"forward, backward, SGD step, EMA / Lookahead) on {result['images']:,} CIFAR-10 images; every option in "
        f"the same process, {result['rounds']} rounds of {result['steps']} steps each, the order rotating per round; "
        f"ratio: median over rounds of the option's images/s over the recipe's in the same round.", "",
        "| option | what changes | images/s (median) | vs the recipe (median ratio) | per-round ratios | "
        "first step (s) |",
        "| --- | --- | ---: | ---: | --- | ---: |",
    ]
    for option in result["options"]:
        name = option.name
        if name in result.get("errors", {}):
            lines.append(f"| `{name}` | {option.label} | failed: {result['errors'][name]} | | | |")
            continue
        ratio = "1.00x" if name == "recipe" else f"{statistics.median(ratios[name]):.2f}x"
        steps = result.get("per_round", {}).get(name, result["steps"])
        note = "" if steps == result["steps"] else f" ({steps} step per round: slow)"
        lines.append(f"| `{name}` | {option.label}{note} | {statistics.median(rates[name]):.0f} | {ratio} | "
                     f"{', '.join(f'{v:.2f}' for v in ratios[name])} | {result['warm_s'][name]:.1f} |")
    faster = [(statistics.median(ratios[o.name]), o.name) for o in result["options"]
              if o.name != "recipe" and o.name in ratios]
    faster = sorted((r, n) for r, n in faster if r > 1.0)[::-1]
    lines += ["", f"The recipe ran at {base:.0f} images/s (median). "
              + (("Faster than it: " + ", ".join(f"`{n}` {r:.2f}x" for r, n in faster) + ".") if faster
                 else "No option was faster than the recipe as it is.")
              + " First step: the warm-up step of each option on its own (oneDNN primitive creation; compilation "
                "for `compile`).", "", auto_verdict(result)[1], ""]
    p = result["profile"]
    lines += [
        f"Where the recipe's step spends its time (torch.profiler, {result['steps']} steps after the rounds; "
        f"{p['wall_ms_per_step']:.0f} ms wall per step, {p['total_ms_per_step']:.0f} ms of self CPU time per step "
        f"summed over ops; convolution ops, forward and backward: {p['conv_share']:.0%}). The profiled `fit` call "
        f"ends with its checkpoint, whose finite-value check is the `aten::all` / `ne` / `eq` / `abs` rows:", "",
        "| op | self CPU ms / step | share | calls / step |", "| --- | ---: | ---: | ---: |",
    ]
    for row in p["rows"]:
        lines.append(f"| `{row['op']}` | {row['ms_per_step']:.1f} | {row['share']:.1%} | "
                     f"{row['calls_per_step']:g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="steps per option per round")
    parser.add_argument("--images", type=int, default=IMAGES, help="training images (the 1,000 test images tiled)")
    parser.add_argument("--only", help="comma-separated option names to measure besides the recipe")
    parser.add_argument("--batch-size", type=int, help="the baseline's batch size (default: the recipe's 1024)")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    overrides = {"batch_size": args.batch_size} if args.batch_size else {}
    only = [s.strip() for s in args.only.split(",")] if args.only else None
    result = run(args.rounds, args.steps, args.images, only, overrides)
    text = markdown(result)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0 if auto_verdict(result)[0] else 1


if __name__ == "__main__":
    sys.exit(main())
