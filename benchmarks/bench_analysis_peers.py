"""Cost analysers side by side: ``cnnlab.analyze`` against fvcore, ptflops, thop, torchinfo and FlopCounterMode.

    /work/peers-venv/bin/python benchmarks/bench_analysis_peers.py [--rounds 3] [--models a,b] [--write]

The peers live in a second environment (torch 2.14.1, torchvision 0.29.1, ``pip install fvcore ptflops thop
torchinfo``, cnnlab installed editable); a peer that is not installed is skipped with a line saying so.

Models: torchvision's resnet50, inception_v3, googlenet and vgg16 (as torchvision builds them by default,
auxiliary heads included, in eval mode; cnnlab's zoo models of those names when torchvision is absent) and
cnnlab's resnet1202 (the CIFAR network; torchvision has none). Every counter sees the same module instance and
a 1-image input. Time: the median of ``--rounds`` rounds after one warm-up call each; within a round the
counters run one after the other in an order that rotates from round to round, in one process. Counts: what
each counter returns, as it names it, next to cnnlab's multiply-adds (MACs) of convolutions and matrix products.

Why the counts differ is measured, not assumed: each counter's count is split by module type (by operator for
the tracing counters: fvcore, FlopCounterMode, ptflops' aten backend) and divided by what that type does in
cnnlab's report of the same instance: multiply-adds for convolutions and linear layers, output elements for
normalisation, activation and pooling layers. A factor of 1.000 on Conv2d means the same multiply-adds,
2.000 on BatchNorm2d means two operations per output element. What no module holds (``F.relu`` in a forward,
``x += y``) is the rest: the counter's total minus its per-type sum.

``--write`` replaces the ``## Cost analysers side by side`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from _markdown import write_section
from _rounds import rotated

SECTION = "## Cost analysers side by side"
MODELS = ("resnet50", "inception_v3", "googlenet", "vgg16", "resnet1202")
TORCHVISION = ("resnet50", "inception_v3", "googlenet", "vgg16")
SIZES = {"inception_v3": (3, 299, 299), "resnet1202": (3, 32, 32)}
# module types whose factor is multiply-adds (per MAC); every other type's factor is per output element
MAC_TYPES = ("Conv2d", "Linear")
# operator names of the tracing counters, as the module type they come from
OP_TYPES = {"conv": "Conv2d", "convolution": "Conv2d", "_convolution": "Conv2d", "linear": "Linear",
            "addmm": "Linear", "mm": "Linear", "matmul": "Linear", "batch_norm": "BatchNorm2d",
            "adaptive_avg_pool2d": "AdaptiveAvgPool2d", "max_pool2d": "MaxPool2d", "avg_pool2d": "AvgPool2d",
            "upsample_nearest2d": "Upsample"}
SHOWN_TYPES = ("Conv2d", "Linear", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d")


@dataclass
class Count:
    """What one counter said about one model: its number, its unit, parameters, and the split by type."""

    value: int
    unit: str
    params: int | None
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """A counter: the package it needs (None: none beyond torch), how a user calls it, and what it counts."""

    name: str
    package: str | None
    run: Callable[[nn.Module, tuple[int, ...]], Count]
    unit: str


# ------------------------------------------------------------------------------------------- the counters
def _type_of(model: nn.Module) -> dict[str, str]:
    return {name: type(m).__name__ for name, m in model.named_modules()}


def run_cnnlab(model: nn.Module, size: tuple[int, ...]) -> Count:
    from cnnlab.analysis import analyze

    report = analyze(model, size)
    return Count(report.macs, "MACs", report.params, reference_by_type(report)["macs"])


def run_fvcore(model: nn.Module, size: tuple[int, ...]) -> Count:
    from fvcore.nn import FlopCountAnalysis, parameter_count

    counter = FlopCountAnalysis(model, torch.randn(1, *size))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    total = int(counter.total())
    by_type: dict[str, int] = {}
    for op, n in counter.by_operator().items():
        key = OP_TYPES.get(op, op)
        by_type[key] = by_type.get(key, 0) + int(n)
    return Count(total, "flops (= MACs)", int(parameter_count(model)[""]), by_type)


def run_ptflops(model: nn.Module, size: tuple[int, ...]) -> Count:
    from ptflops import get_model_complexity_info

    macs, params = get_model_complexity_info(model, size, as_strings=False, print_per_layer_stat=False,
                                             backend="pytorch")
    return Count(int(macs), "MACs", int(params))


def ptflops_by_type(model: nn.Module, size: tuple[int, ...]) -> dict[str, int]:
    """ptflops' module hooks, read per module before they are removed (its own engine, untimed)."""
    from ptflops.pytorch_engine import add_flops_counting_methods

    counted = add_flops_counting_methods(model)
    counted.eval()
    counted.start_flops_count(ost=io.StringIO(), verbose=False, ignore_list=[])
    try:
        counted(torch.ones(1, *size))
        by_type: dict[str, int] = {}
        for m in counted.modules():
            if hasattr(m, "__flops__") and not any(m.children()):
                by_type[type(m).__name__] = by_type.get(type(m).__name__, 0) + int(m.__flops__)
    finally:
        counted.stop_flops_count()
    return by_type


def run_ptflops_aten(model: nn.Module, size: tuple[int, ...]) -> Count:
    from ptflops import get_model_complexity_info

    macs, params = get_model_complexity_info(model, size, as_strings=False, print_per_layer_stat=False,
                                             backend="aten")
    return Count(int(macs), "MACs", int(params))


def run_thop(model: nn.Module, size: tuple[int, ...]) -> Count:
    from thop import profile

    macs, params, layers = profile(model, inputs=(torch.randn(1, *size),), verbose=False, ret_layer_info=True)
    types = _type_of(model)
    by_type: dict[str, int] = {}

    def walk(prefix: str, tree: dict) -> None:
        for name, (ops, _, children) in tree.items():
            path = f"{prefix}.{name}" if prefix else name
            if children:
                walk(path, children)
            elif ops:
                by_type[types[path]] = by_type.get(types[path], 0) + int(ops)

    walk("", layers)
    return Count(int(macs), "MACs", int(params), by_type)


def run_torchinfo(model: nn.Module, size: tuple[int, ...]) -> Count:
    from torchinfo import summary

    stats = summary(model, input_size=(1, *size), verbose=0, device="cpu")
    by_type: dict[str, int] = {}
    for layer in stats.summary_list:
        if layer.is_leaf_layer and layer.macs:
            by_type[layer.class_name] = by_type.get(layer.class_name, 0) + int(layer.macs)
    return Count(int(stats.total_mult_adds), "mult-adds", int(stats.total_params), by_type)


def run_flop_counter(model: nn.Module, size: tuple[int, ...]) -> Count:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(1, *size)
    with FlopCounterMode(display=False) as counter:
        model(x)
    by_type: dict[str, int] = {}
    for op, n in counter.get_flop_counts().get("Global", {}).items():
        key = OP_TYPES.get(str(op).split(".")[-1], str(op))
        by_type[key] = by_type.get(key, 0) + int(n)
    return Count(int(counter.get_total_flops()), "FLOPs (2 per MAC)", None, by_type)


PEERS = (
    Peer("cnnlab.analyze", None, run_cnnlab, "MACs"),
    Peer("fvcore FlopCountAnalysis", "fvcore", run_fvcore, "flops (= MACs)"),
    Peer("ptflops (pytorch backend)", "ptflops", run_ptflops, "MACs"),
    Peer("ptflops (aten backend)", "ptflops", run_ptflops_aten, "MACs"),
    Peer("thop", "thop", run_thop, "MACs"),
    Peer("torchinfo", "torchinfo", run_torchinfo, "mult-adds"),
    Peer("FlopCounterMode", None, run_flop_counter, "FLOPs (2 per MAC)"),
)


def available(peers: tuple[Peer, ...] = PEERS) -> tuple[list[Peer], list[str]]:
    """The peers whose package is installed, and one line for each one that is not."""
    present, skipped = [], []
    for peer in peers:
        if peer.package is None or importlib.util.find_spec(peer.package) is not None:
            present.append(peer)
        else:
            skipped.append(f"{peer.name}: not installed (`pip install {peer.package}`), skipped")
    return present, skipped


def version(package: str | None) -> str:
    name = {"fvcore": "fvcore", "ptflops": "ptflops", "thop": "thop", "torchinfo": "torchinfo"}.get(package or "")
    if not name:
        return f"torch {torch.__version__}"
    try:
        return f"{name} {importlib.metadata.version(name if name != 'thop' else 'thop')}"
    except importlib.metadata.PackageNotFoundError:
        return name


# ------------------------------------------------------------------------------------------- the reference
def reference_by_type(report: Any) -> dict[str, dict[str, int]]:
    """From cnnlab's report of the instance, per leaf module type: its multiply-adds (``macs``) and its output
    elements (``elements``: normalisation 2 ops per element, activations 1, the rest from the output shape)."""
    macs: dict[str, int] = {}
    elements: dict[str, int] = {}
    for row in report.layers:
        if not row.is_leaf or not row.calls:
            continue
        kinds = row.other_ops_by_kind
        if kinds.get("norm"):
            n = kinds["norm"] // 2
        elif kinds.get("activation"):
            n = kinds["activation"]
        else:
            n = row.calls * _numel(row.output_shape)
        macs[row.type] = macs.get(row.type, 0) + row.macs
        elements[row.type] = elements.get(row.type, 0) + n
    return {"macs": macs, "elements": elements}


def _numel(shape: Any) -> int:
    if not shape or not isinstance(shape, (list, tuple)):
        return 0
    if isinstance(shape[0], (list, tuple)):  # several outputs
        return sum(_numel(s) for s in shape)
    n = 1
    for v in shape:
        n *= int(v)
    return n


def factors(count: Count, reference: dict[str, dict[str, int]]) -> dict[str, float]:
    """The counter's count per type over cnnlab's (MACs for MAC_TYPES, output elements for the rest), and the
    part of its total that no type holds under the key ``rest`` (absolute)."""
    out: dict[str, float] = {}
    for key, value in count.by_type.items():
        base = reference["macs" if key in MAC_TYPES else "elements"].get(key, 0)
        if base:
            out[key] = value / base
    out["rest"] = count.value - sum(count.by_type.values()) if count.by_type else float("nan")
    return out


# ------------------------------------------------------------------------------------------- measuring
def build(name: str) -> tuple[nn.Module, tuple[int, ...], str]:
    """The instance every counter sees, its input size, and where it comes from."""
    size = SIZES.get(name, (3, 224, 224))
    if name in TORCHVISION and importlib.util.find_spec("torchvision") is not None:
        import torchvision

        kwargs = {"init_weights": False} if name in ("inception_v3", "googlenet") else {}
        model = getattr(torchvision.models, name)(**kwargs)
        return model.eval(), size, f"torchvision {torchvision.__version__}"
    import cnnlab

    return cnnlab.create_model(name).eval(), size, "cnnlab zoo"


def measure(name: str, peers: list[Peer], rounds: int) -> dict[str, Any]:
    from cnnlab.analysis import analyze

    model, size, source = build(name)
    report = analyze(model, size)
    reference = reference_by_type(report)
    counts: dict[str, Count] = {}
    errors: dict[str, str] = {}
    times: dict[str, list[float]] = {p.name: [] for p in peers}
    for peer in peers:  # warm-up call: imports, tracing caches, oneDNN primitives; its counts are kept
        try:
            counts[peer.name] = peer.run(model, size)
        except Exception as exc:  # a counter that fails on a model is reported, not fatal
            errors[peer.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if "ptflops (pytorch backend)" in counts:
        counts["ptflops (pytorch backend)"].by_type = ptflops_by_type(model, size)
    working = [p for p in peers if p.name not in errors]
    for r in range(rounds):
        for peer in rotated(working, r):
            start = time.perf_counter()
            peer.run(model, size)
            times[peer.name].append(time.perf_counter() - start)
    zoo = analyze(name) if name in TORCHVISION else None
    try:  # batch 2: batch norm in training mode needs two values per channel (Inception-v3's aux head is 1x1)
        aux: int | None = analyze(model, size, batch_size=2, training=True).macs // 2 - report.macs
    except Exception:
        aux = None
    return {"model": name, "source": source, "size": size, "macs": report.macs, "params": report.params,
            "other_ops": dict(report.other_ops_by_kind), "reference": reference, "counts": counts,
            "errors": errors, "times": {k: statistics.median(v) for k, v in times.items() if v},
            "zoo_macs": zoo.macs if zoo is not None else None,
            "aux_macs": aux}


# ------------------------------------------------------------------------------------------- the section
def _pct(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.2f}%" if base else "n/a"


def as_macs(count: Count) -> float:
    """The count in multiply-adds: FlopCounterMode counts 2 FLOPs per MAC."""
    return count.value / 2 if count.unit.startswith("FLOPs") else count.value


def render_times(rows: list[dict[str, Any]], peers: list[Peer]) -> list[str]:
    head = "| model (instance, input) | " + " | ".join(p.name for p in peers) + " |"
    lines = [head, "| --- |" + " ---: |" * len(peers)]
    for row in rows:
        base = row["times"].get(peers[0].name)
        cells = []
        for p in peers:
            t = row["times"].get(p.name)
            if t is None:
                cells.append("failed")
            elif p is peers[0] or not base:
                cells.append(f"{t * 1e3:.0f} ms")
            else:
                cells.append(f"{t * 1e3:.0f} ms ({t / base:.1f}x)")
        lines.append(f"| {row['model']} ({row['source']}, {'x'.join(map(str, row['size']))}) | "
                     + " | ".join(cells) + " |")
    return lines


def render_counts(rows: list[dict[str, Any]], peers: list[Peer]) -> list[str]:
    head = "| model | " + " | ".join(f"{p.name} ({p.unit})" for p in peers) + " |"
    lines = [head, "| --- |" + " ---: |" * len(peers)]
    for row in rows:
        cells = []
        for p in peers:
            c = row["counts"].get(p.name)
            if c is None:
                cells.append(f"failed: {row['errors'].get(p.name, 'not run')}")
            elif p is peers[0]:
                cells.append(f"{c.value:,}")
            else:
                half = " /2" if c.unit.startswith("FLOPs") else ""
                cells.append(f"{c.value:,} ({_pct(as_macs(c), row['macs'])}{half})")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    lines += ["", "| model | " + " | ".join(p.name for p in peers if p.name != "FlopCounterMode")
              + " | cnnlab's zoo model of that name (MACs) | aux heads, training mode (MACs) |",
              "| --- |" + " ---: |" * (len([p for p in peers if p.name != "FlopCounterMode"]) + 2)]
    for row in rows:
        cells = []
        for p in peers:
            if p.name == "FlopCounterMode":
                continue
            c = row["counts"].get(p.name)
            cells.append("n/a" if c is None or c.params is None else f"{c.params:,}")
        zoo = "same instance" if row["zoo_macs"] is None else \
            f"{row['zoo_macs']:,} ({_pct(row['zoo_macs'], row['macs'])})"
        aux = "n/a" if row["aux_macs"] is None else f"+{row['aux_macs']:,}"
        lines.append(f"| {row['model']} params | " + " | ".join(cells) + f" | {zoo} | {aux} |")
    return lines


def _span(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    return f"{lo:.3f}" if round(lo, 3) == round(hi, 3) else f"{lo:.3f}-{hi:.3f}"


def render_factors(rows: list[dict[str, Any]], peers: list[Peer]) -> list[str]:
    """One row per counter: its count per type over cnnlab's, the span over the models; the rest per model."""
    lines = ["| counter | " + " | ".join(SHOWN_TYPES) + " | other types | not in any type (per model) |",
             "| --- |" + " ---: |" * (len(SHOWN_TYPES) + 1) + " --- |"]
    present = {t for row in rows for part in row["reference"].values() for t, n in part.items() if n}
    for p in peers:
        per_type: dict[str, list[float]] = {}
        rest, others = [], set()
        for row in rows:
            c = row["counts"].get(p.name)
            if c is None or not c.by_type:
                continue
            f = factors(c, row["reference"])
            for key, value in f.items():
                if key == "rest":
                    continue
                per_type.setdefault(key, []).append(value)
                if key not in SHOWN_TYPES and value:
                    others.add(key)
            rest.append(f"{row['model']} {int(f['rest']):,}")
        if not per_type:
            lines.append(f"| {p.name} | " + " | ".join("" for _ in SHOWN_TYPES) + " | | no per-type split |")
            continue
        other_text = ", ".join(f"{k} {_span(per_type[k])}" for k in sorted(others))
        lines.append(f"| {p.name} | " + " | ".join(_span(per_type.get(t, [])) or ("0" if t in present else "n/a")
                                                   for t in SHOWN_TYPES)
                     + f" | {other_text} | {'; '.join(rest)} |")
    return lines


WHY = """\
What each counter counts, as its source says (fvcore 0.1.5, ptflops 0.7.5, thop 0.1.1, torchinfo 1.8.0, torch's
FlopCounterMode); the factor table above is the measurement that confirms or refutes each line:

- **Unit.** FlopCounterMode counts 2 FLOPs per multiply-add of convolutions and matrix products and nothing
  else, so its total / 2 should equal cnnlab's MACs. fvcore calls multiply-adds "flops"; ptflops, thop and
  torchinfo say MACs / mult-adds.
- **Convolutions and linear layers.** fvcore, thop and FlopCounterMode count the multiply-adds alone;
  ptflops' pytorch backend adds one op per output element of a layer with a bias (vgg16's convolutions,
  every classifier), which cnnlab reports in its own `bias` column.
- **Batch norm** (eval, affine): 2 ops per element in fvcore, ptflops and thop; none in FlopCounterMode;
  cnnlab counts 2 per element in `other_ops`, never in MACs.
- **ReLU, pooling, adds.** fvcore ignores ReLU, max pooling and adds and counts adaptive average pooling at
  1 per input element; thop counts ReLU and max pooling as 0; ptflops' pytorch backend counts a ReLU or pooling
  module through its module hook and again through its patch of `torch.nn.functional` (the module calls
  `F.relu` / `F.max_pool2d`), and the functional calls of forwards that use `F.relu` directly (torchvision's
  GoogLeNet and Inception-v3 `BasicConv2d`): the "not in any type" column; it patches `torch.add` but not
  `+=`, so ResNet's `out += identity` is missed. cnnlab counts residual adds as elementwise ops in
  `other_ops`.
- **Auxiliary heads**: in eval mode no counter runs them (the last column of the parameter table: what they
  add when cnnlab analyses the model in training mode). thop counts parameters through forward hooks, so
  parameters of modules that never ran are missing from its count.
- **Which instance**: torchvision's GoogLeNet uses a 3x3 convolution where the paper's Inception module has a
  5x5 (kept for its weights); cnnlab's zoo follows the paper: the zoo column shows what that changes.
"""


def render(rows: list[dict[str, Any]], peers: list[Peer], skipped: list[str], rounds: int,
           load: tuple[float, float], when: str = "") -> str:
    versions = ", ".join(dict.fromkeys(version(p.package) for p in peers))
    lines = [SECTION, "",
             f"`benchmarks/bench_analysis_peers.py --rounds {rounds} --write` "
             f"({when or time.strftime('%Y-%m-%d %H:%M')}): "
             f"{os.cpu_count()} CPUs, {torch.get_num_threads()} threads, 1-minute load average "
             f"{load[0]:.1f}-{load[1]:.1f}; {versions}. Time per model: median of {rounds} alternating rounds in "
             f"one process, after a warm-up call each; the multiple is over `cnnlab.analyze`'s time.", ""]
    lines += [f"- {s}" for s in skipped] + ([""] if skipped else [])
    lines += render_times(rows, peers)
    lines += ["", "Counts, as each counter returns them (percentage: against cnnlab's MACs, FlopCounterMode's "
                  "FLOPs halved first), then parameters:", ""]
    lines += render_counts(rows, peers)
    lines += ["", "Each counter's count per module type over what cnnlab's report of the same instance gives "
                  "that type (Conv2d, Linear: per multiply-add; the others: per output element; the span over "
                  "the five models); last column: the part of the total that no module type holds:", ""]
    lines += render_factors(rows, peers)
    lines += ["", WHY]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from " + ", ".join(MODELS))
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    parser.add_argument("--save", type=Path, help="also write the raw results to this JSON file")
    parser.add_argument("--render", type=Path, help="measure nothing: render the results saved by --save")
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads(args.render.read_text())
        peers = [p for p in PEERS if p.name in saved["peers"]]
        rows = [{**r, "size": tuple(r["size"]), "counts": {k: Count(**c) for k, c in r["counts"].items()}}
                for r in saved["rows"]]
        text = render(rows, peers, saved["skipped"], saved["rounds"], tuple(saved["load"]), saved["when"])
        print(text)
        if args.write:
            write_section(SECTION, text)
        return 0
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    peers, skipped = available()
    for line in skipped:
        print(line, file=sys.stderr)
    load = [os.getloadavg()[0]]
    rows = []
    for name in names:
        rows.append(measure(name, peers, args.rounds))
        load.append(os.getloadavg()[0])
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in rows[-1]["times"].items()), flush=True)
    when = time.strftime("%Y-%m-%d %H:%M")
    text = render(rows, peers, skipped, args.rounds, (min(load), max(load)), when)
    print(text)
    if args.save:
        args.save.write_text(json.dumps({
            "peers": [p.name for p in peers], "skipped": skipped, "rounds": args.rounds, "when": when,
            "load": [min(load), max(load)],
            "rows": [{**r, "counts": {k: dataclasses.asdict(c) for k, c in r["counts"].items()}} for r in rows]}))
    if args.write:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
