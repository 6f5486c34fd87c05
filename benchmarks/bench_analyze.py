"""Cost analyser speed: every zoo model, and ``analyze`` against fvcore's FlopCountAnalysis side by side.

    /work/venv-ref/bin/python benchmarks/bench_analyze.py [--repeats 3] [--write]

* zoo sweep: ``cnnlab.analyze(name)`` for every registered model (built on the meta device, traced, RF and
  report included); the median of ``--repeats`` runs per model, summed, as wall time and as the process's
  CPU time (what the sweep costs when the shared machine is not also busy with other jobs). The first call of a
  process also pays for imports and torch's meta kernels: it is reported on its own. Goal: < 10 s in all on 2 cores.
* side by side (needs fvcore, e.g. in /work/venv-ref): on the same CPU model in eval mode (torchvision's
  resnet50 and inception_v3 when torchvision is installed, else cnnlab's), rounds alternate
  ``analyze(model)`` and ``FlopCountAnalysis(model, x).total()`` so that a busy neighbour slows both alike.
  Goal: analyze >= 3x faster.

Load averages (os.getloadavg) before and after are recorded: the machine is shared. ``--write`` replaces the
``## Cost analyser`` section of BENCHMARKS.md and leaves the other sections alone.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import cnnlab
from _markdown import write_section
from cnnlab.analysis import analyze

SECTION = "## Cost analyser"


def timed(fn) -> float:  # noqa: ANN001
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cpu_timed(fn) -> tuple[float, float]:  # noqa: ANN001
    """(wall seconds, CPU seconds of this process): on a loaded machine the CPU time is what an idle one pays."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def zoo_sweep(repeats: int) -> tuple[float, dict[str, float], dict[str, float], float]:
    """(first call seconds, median wall and CPU seconds per model, wall seconds of the first full sweep)."""
    names = cnnlab.list_models()
    first = timed(lambda: analyze(names[0]))
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    sweep_start = time.perf_counter()
    for r in range(repeats):
        for n in names:
            wall, cpu = cpu_timed(lambda n=n: analyze(n))
            walls[n].append(wall)
            cpus[n].append(cpu)
        if r == 0:
            first_sweep = time.perf_counter() - sweep_start
    return (first, {n: statistics.median(v) for n, v in walls.items()},
            {n: statistics.median(v) for n, v in cpus.items()}, first_sweep)


def reference_model(name: str) -> tuple[torch.nn.Module, tuple[int, int, int], str]:
    try:
        import torchvision.models as tvm

        kwargs = {"aux_logits": False, "init_weights": False} if name == "inception_v3" else {}
        model = getattr(tvm, name)(**kwargs)
        source = f"torchvision {__import__('torchvision').__version__}"
    except ImportError:
        model = cnnlab.create_model(name, **({"aux_logits": False} if name == "inception_v3" else {}))
        source = "cnnlab zoo"
    size = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
    return model.eval(), size, source


def side_by_side(repeats: int) -> list[dict]:
    """Alternating rounds of analyze and fvcore on resnet50 and inception_v3; medians and both counts."""
    return [compare_one(name, repeats) for name in ("resnet50", "inception_v3")]


def compare_one(name: str, repeats: int) -> dict:
    from fvcore.nn import FlopCountAnalysis

    model, size, source = reference_model(name)
    x = torch.randn(1, *size)
    counts: dict[str, int] = {}

    def run_ours() -> None:
        counts["macs"] = analyze(model, size).macs

    def run_fvcore() -> None:
        counter = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        counts["fvcore_total"] = int(counter.total())

    run_ours(), run_fvcore()  # warm both (jit, meta kernels) before timing
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(timed(run_ours))
        theirs.append(timed(run_fvcore))
    return {"model": name, "source": source, "ours": statistics.median(ours), "fvcore": statistics.median(theirs),
            **counts}


def render(first: float, medians: dict[str, float], cpu: dict[str, float], first_sweep: float,
           rows: list[dict] | None, load_before: tuple[float, ...], load_after: tuple[float, ...], repeats: int) -> str:
    total = sum(medians.values())
    cpu_total = sum(cpu.values())
    slowest = sorted(medians.items(), key=lambda kv: -kv[1])[:6]
    lines = [
        SECTION, "",
        f"`benchmarks/bench_analyze.py --repeats {repeats}` on {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
        f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before, "
        f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after "
        "(a shared machine: other jobs ran at the same time).", "",
        f"- Every zoo model ({len(medians)}), `analyze(name)` (build on meta + trace + report): "
        f"**{total:.2f} s** wall, **{cpu_total:.2f} s** CPU time of the process (sums of per-model medians; "
        f"goal < 10 s; with the machine shared, the wall time includes waiting for a core); first full sweep "
        f"{first_sweep:.2f} s wall; the first call of the process (imports, meta kernels) {first:.2f} s on its own.",
        "- Slowest: " + ", ".join(f"{n} {t:.2f} s" for n, t in slowest) + ".",
    ]
    if rows:
        lines += ["", "| model (same CPU module, eval) | analyze | fvcore FlopCountAnalysis | speed-up | "
                      "analyze MACs | fvcore total |", "|---|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['model']} ({r['source']}) | {r['ours'] * 1e3:.0f} ms | {r['fvcore'] * 1e3:.0f} ms | "
                         f"{r['fvcore'] / r['ours']:.1f}x | {r['macs']:,} | {r['fvcore_total']:,} |")
        lines += ["", "Medians of alternating rounds. fvcore's total includes batch norm and adaptive pooling "
                      "(it calls MACs flops), hence the larger number; conv + linear MACs agree."]
    else:
        lines += ["", "fvcore is not installed in this environment: the side-by-side part was skipped."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    first, medians, cpu, first_sweep = zoo_sweep(args.repeats)
    try:
        rows = side_by_side(max(args.repeats, 3))
    except ImportError:
        rows = None
    load_after = os.getloadavg()
    text = render(first, medians, cpu, first_sweep, rows, load_before, load_after, args.repeats)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
