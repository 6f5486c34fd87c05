"""Zoo build and forward times: what it costs to build every registered model on the meta device, and
to build it on the CPU (random init) and run one eval forward at its card's ``min_input_size``.

    python benchmarks/bench_zoo.py [PATTERN] [--rounds 3] [--write]

The CPU column is what ``tests/models/test_zoo.py::test_forward_at_min_input_size_on_cpu`` does; models
over 3 s there belong outside its FAST_FORWARD set. Medians of ``--rounds``, with the 1-minute load
average seen during the run (the machine is shared). ``--write`` replaces the ``## Zoo builds`` section
of BENCHMARKS.md.

Issue 3's goal, asserted here (exit status 1 when missed): every model builds on meta in under a second.
The goal is judged on the process's CPU time, which a busy neighbour inflates far less than wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from _markdown import write_section
from cnnlab.models import create_model, list_models, model_card

SECTION = "## Zoo builds"
SLOW_TEST_S = 3.0  # the project's threshold for @pytest.mark.slow
META_GOAL_S = 1.0  # issue 3: "every model builds in under a second on the meta device"


def meta_build(name: str) -> tuple[float, float]:
    """Wall and process CPU seconds of one ``create_model(name)`` on the meta device."""
    start, cpu = time.perf_counter(), time.process_time()
    with torch.device("meta"):
        create_model(name)
    return time.perf_counter() - start, time.process_time() - cpu


def cpu_build_and_forward(name: str) -> tuple[float, float]:
    card = model_card(name)
    torch.manual_seed(0)
    start = time.perf_counter()
    model = create_model(name).eval()
    built = time.perf_counter()
    with torch.no_grad():
        model(torch.randn(2, card.input_size[0], card.min_input_size, card.min_input_size))
    return built - start, time.perf_counter() - built


def run(pattern: str | None, rounds: int) -> dict:
    rows, loads = [], []
    meta_build(list_models(pattern)[0])  # first meta build pays one-off imports of torch's meta kernels
    for name in list_models(pattern):
        metas, meta_cpus, builds, forwards = [], [], [], []
        for _ in range(rounds):
            wall, cpu = meta_build(name)
            metas.append(wall)
            meta_cpus.append(cpu)
            b, f = cpu_build_and_forward(name)
            builds.append(b)
            forwards.append(f)
            loads.append(os.getloadavg()[0])
        rows.append((name, statistics.median(metas), statistics.median(meta_cpus), statistics.median(builds),
                     statistics.median(forwards)))
    return {"rows": rows, "rounds": rounds, "load_min": min(loads), "load_max": max(loads),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cores": os.cpu_count()}


def missed_goal(r: dict) -> list[str]:
    """Models whose median meta build took a second or more of CPU time."""
    return [name for name, _, cpu, _, _ in r["rows"] if cpu >= META_GOAL_S]


def markdown(r: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    slowest = max(r["rows"], key=lambda row: row[2])
    missed = missed_goal(r)
    verdict = (f"Goal (every meta build under {META_GOAL_S:.0f} s of CPU time): "
               + (f"MISSED by {', '.join(missed)}." if missed else
                  f"met; slowest {slowest[0]} {slowest[2]:.2f} s CPU, {slowest[1]:.2f} s wall."))
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_zoo.py --write` ({when}; torch {r['torch']}, {r['cores']} cores, {r['threads']} "
        f"threads; 1-minute load average during the run {r['load_min']:.1f}-{r['load_max']:.1f}); median of "
        f"{r['rounds']} rounds. CPU: random init + one eval forward, batch 2, at the card's min_input_size.",
        "",
        verdict,
        "",
        "| model | meta build, wall (s) | meta build, CPU (s) | CPU build (s) | CPU forward (s) | CPU total (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, meta, meta_cpu, build, forward in r["rows"]:
        total = build + forward
        flag = " (slow)" if total > SLOW_TEST_S else ""
        lines.append(f"| {name} | {meta:.3f} | {meta_cpu:.3f} | {build:.2f} | {forward:.2f} | {total:.2f}{flag} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", nargs="?", default=None, help="shell-style filter of model names")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    if not list_models(args.pattern):
        parser.error(f"no model matches {args.pattern!r}")
    result = run(args.pattern, args.rounds)
    text = markdown(result)
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 1 if missed_goal(result) else 0


if __name__ == "__main__":
    sys.exit(main())
