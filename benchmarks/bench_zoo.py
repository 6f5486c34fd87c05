"""Zoo build and forward times: what it costs to build every registered model on the meta device, and
to build it on the CPU (random init) and run one eval forward at its card's ``min_input_size``.

    python benchmarks/bench_zoo.py [PATTERN] [--rounds 3] [--write]

The CPU column is what ``tests/models/test_zoo.py::test_forward_at_min_input_size_on_cpu`` does; models
over 3 s there belong outside its FAST_FORWARD set. Medians of ``--rounds``, with the 1-minute load
average seen during the run (the machine is shared). ``--write`` replaces the ``## Zoo builds`` section
of BENCHMARKS.md.
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


def meta_build(name: str) -> float:
    start = time.perf_counter()
    with torch.device("meta"):
        create_model(name)
    return time.perf_counter() - start


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
        metas, builds, forwards = [], [], []
        for _ in range(rounds):
            metas.append(meta_build(name))
            b, f = cpu_build_and_forward(name)
            builds.append(b)
            forwards.append(f)
            loads.append(os.getloadavg()[0])
        rows.append((name, statistics.median(metas), statistics.median(builds), statistics.median(forwards)))
    return {"rows": rows, "rounds": rounds, "load_min": min(loads), "load_max": max(loads),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cores": os.cpu_count()}


def markdown(r: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        SECTION,
        "",
        f"`python benchmarks/bench_zoo.py --write` ({when}; torch {r['torch']}, {r['cores']} cores, {r['threads']} "
        f"threads; 1-minute load average during the run {r['load_min']:.1f}-{r['load_max']:.1f}); median of "
        f"{r['rounds']} rounds. CPU: random init + one eval forward, batch 2, at the card's min_input_size.",
        "",
        "| model | meta build (s) | CPU build (s) | CPU forward (s) | CPU total (s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, meta, build, forward in r["rows"]:
        total = build + forward
        flag = " (slow)" if total > SLOW_TEST_S else ""
        lines.append(f"| {name} | {meta:.3f} | {build:.2f} | {forward:.2f} | {total:.2f}{flag} |")
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
    text = markdown(run(args.pattern, args.rounds))
    print(text)
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
