"""Design checks from "Rethinking the Inception Architecture for Computer Vision" (Szegedy et al. 2016), with numbers.

``lint(report)`` reads a ``CostReport`` and returns ``Finding``s:

- ``bottleneck`` (Sec. 2, principle 1: avoid representational bottlenecks): a stage whose output has
  fewer than ``bottleneck_ratio`` times the activation values of its input while the grid is unchanged,
  or a grid reduction that does not widen (pooling before widening, Fig. 9 left).
- ``factorize`` (Sec. 3): a convolution with a kernel of 5 or more. Stacking 3x3 layers: 5x5 -> two 3x3
  costs 18/25 (saves 28%); ``n x n`` -> ``1 x n`` then ``n x 1`` costs ``2/n`` (saves ``1 - 2/n``), at equal
  width, both for weights and MACs.
- ``fc_heavy`` (GoogLeNet Sec. 5, NIN): fully connected layers holding more than ``fc_share`` of the
  parameters; global average pooling before the first one makes its input ``C`` instead of ``C * H * W``.
- ``reduce_1x1`` (GoogLeNet Sec. 4, Rethinking Sec. 2 principle 3): a branch of an Inception-style module
  (three or more branches on the same input, concatenated) that applies a ``k x k`` convolution directly to the
  full input depth; a 1x1 reduction to half the width first costs ``H*W*(C_in*R + R*C_out*k*k)`` instead of
  ``H*W*C_in*C_out*k*k``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from cnnlab.analysis.report import CostReport, LayerCost, _shape, _si


@dataclass(frozen=True)
class Finding:
    """One design observation: the rule, the layer, a sentence with the numbers, and the saving."""

    rule: str
    layer: str
    message: str
    saving_macs: int = 0
    saving_params: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lint(report: CostReport, bottleneck_ratio: float = 0.5, fc_share: float = 0.5,
         min_kernel: int = 5) -> list[Finding]:
    """All findings for ``report`` (from ``cnnlab.analyze``), in rule order then execution order."""
    if not 0 < bottleneck_ratio < 1 or not 0 < fc_share < 1:
        raise ValueError("bottleneck_ratio and fc_share must lie strictly between 0 and 1")
    if min_kernel < 2:
        raise ValueError(f"min_kernel must be >= 2, got {min_kernel}")
    return (_bottlenecks(report, bottleneck_ratio) + _factorizable(report, min_kernel)
            + _fc_heavy(report, fc_share) + _missing_reductions(report))


def _single(shape: Any) -> list[int] | None:
    """The shape of a layer's single tensor input/output, None for several tensors or none."""
    if not shape or isinstance(shape[0], list):
        return None
    return shape


def _bottlenecks(report: CostReport, ratio: float) -> list[Finding]:
    rows = [r for r in report.at_depth(1) if r.calls]
    if len(rows) < 2:  # no stages: look at the leaves
        rows = [r for r in report.layers if r.is_leaf and r.calls]
    findings = []
    for r in rows:
        x, y = _single(r.input_shape), _single(r.output_shape)
        if x is None or y is None or len(x) < 3 or len(x) != len(y):
            continue
        grid_in, grid_out = math.prod(x[2:]), math.prod(y[2:])
        size_in, size_out = math.prod(x[1:]), math.prod(y[1:])
        if grid_out == grid_in and size_out < ratio * size_in:
            findings.append(Finding(
                "bottleneck", r.name,
                f"{r.name} ({r.type}) compresses the representation {size_in:,} -> {size_out:,} values "
                f"({size_in / size_out:.1f}x, channels {x[1]} -> {y[1]}) at an unchanged {_shape(x[2:])} grid: "
                f"a representational bottleneck (Rethinking Inception, principle 1)",
                details={"input_values": size_in, "output_values": size_out, "grid": x[2:]}))
        elif 1 < grid_out < grid_in and y[1] <= x[1] and size_out < ratio * size_in:  # global pooling is the head
            findings.append(Finding(
                "bottleneck", r.name,
                f"{r.name} ({r.type}) reduces the grid {_shape(x[2:])} -> {_shape(y[2:])} "
                f"({grid_in / grid_out:.0f}x) and the representation {size_in / size_out:.1f}x "
                f"({size_in:,} -> {size_out:,} values, channels {x[1]} -> {y[1]}): widen while reducing "
                f"(Rethinking Inception Sec. 5, Fig. 10) rather than pooling first",
                details={"input_values": size_in, "output_values": size_out}))
    return findings


def _factorizable(report: CostReport, min_kernel: int) -> list[Finding]:
    findings = []
    for r in report.layers:
        g = r.geometry
        if not r.is_leaf or not r.calls or not g or g.get("op") != "conv":
            continue
        kernel = g["kernel"]
        if len(kernel) != 2 or kernel[0] != kernel[1] or kernel[0] < min_kernel:
            continue
        n = kernel[0]
        weights = r.params - (g["out_channels"] if r.params > _weights(g) else 0)
        stack = (n - 1) // 2 * 9 / (n * n) if n % 2 else None  # (n-1)/2 stacked 3x3 layers
        asym = 2 / n  # 1 x n then n x 1
        best = min(v for v in (stack, asym) if v is not None)
        options = []
        if stack is not None:
            options.append(f"{(n - 1) // 2} stacked 3x3 save {1 - stack:.0%} "
                           f"({_si(round(r.macs * (1 - stack)))} MACs)")
        options.append(f"1x{n} + {n}x1 saves {1 - asym:.0%} ({_si(round(r.macs * (1 - asym)))} MACs)")
        findings.append(Finding(
            "factorize", r.name,
            f"{r.name}: {n}x{n} convolution {g['in_channels']} -> {g['out_channels']} costs {_si(r.macs)} MACs and "
            f"{weights:,} weights; " + "; ".join(options) + " at equal width (Rethinking Inception Sec. 3)",
            saving_macs=round(r.macs * (1 - best)), saving_params=round(weights * (1 - best)),
            details={"kernel": n, "stacked_3x3_cost": stack, "asymmetric_cost": asym}))
    return findings


def _weights(g: dict[str, Any]) -> int:
    return g["out_channels"] * g["in_channels"] // g.get("groups", 1) * math.prod(g["kernel"])


def _fc_heavy(report: CostReport, share: float) -> list[Finding]:
    linears = [r for r in report.layers if r.is_leaf and r.calls and r.type.endswith("Linear")
               and (r.type == "Linear" or r.params)]
    if not linears or not report.params:
        return []
    fc_params = sum(r.params for r in linears)
    if fc_params <= share * report.params:
        return []
    first = linears[0]
    x = _single(first.input_shape)
    details: dict[str, Any] = {"fc_params": fc_params, "share": fc_params / report.params}
    saving = 0
    gap = ""
    if x is not None and len(x) == 2:
        in_features, out_features = x[1], _single(first.output_shape)[-1]  # type: ignore[index]
        source = _feature_map_before(report, first, in_features)
        if source is not None:
            c, hw = source[1], math.prod(source[2:])
            saving = out_features * (in_features - c)
            gap = (f"; global average pooling of the {c}x{_shape(source[2:])} map before {first.name} makes it "
                   f"{c} x {out_features} instead of {c}*{hw} x {out_features}: {saving:,} fewer parameters "
                   f"({saving / report.params:.0%} of the model)")
            details.update({"channels": c, "grid": source[2:]})
    return [Finding(
        "fc_heavy", first.name,
        f"fully connected layers hold {fc_params:,} of {report.params:,} parameters ({fc_params / report.params:.0%})"
        + gap, saving_params=saving, saving_macs=saving * report.batch_size, details=details)]


def _feature_map_before(report: CostReport, row: LayerCost, features: int) -> list[int] | None:
    """The last spatial output before ``row`` whose C*H*W equals ``features`` (what was flattened)."""
    index = report.layers.index(row)
    for prev in reversed(report.layers[:index]):
        shape = _single(prev.output_shape)
        if shape is not None and len(shape) >= 4 and math.prod(shape[1:]) == features and math.prod(shape[2:]) > 1:
            return shape
    return None


def _missing_reductions(report: CostReport) -> list[Finding]:
    findings = []
    for module in report.layers:
        if module.is_leaf or not module.calls:
            continue
        x, y = _single(module.input_shape), _single(module.output_shape)
        if x is None or y is None or len(x) < 4:
            continue
        prefix = module.name + "." if module.name else ""
        children = [r for r in report.layers if r.name.startswith(prefix) and r.depth == module.depth + 1
                    and r.calls and _single(r.input_shape) == x]
        outs = [_single(c.output_shape) for c in children]
        if len(children) < 3 or any(o is None or o[2:] != y[2:] for o in outs) or \
                sum(o[1] for o in outs) != y[1]:  # type: ignore[index]
            continue  # not branches on one input concatenated along channels
        for branch in children:
            conv = next((r for r in report.layers if (r.name == branch.name or r.name.startswith(branch.name + "."))
                         and r.is_leaf and r.geometry and r.geometry.get("op") == "conv"), None)
            if conv is None or math.prod(conv.geometry["kernel"]) == 1 or conv.geometry["in_channels"] != x[1]:
                continue
            g = conv.geometry
            c_in, c_out, k = g["in_channels"], g["out_channels"], math.prod(g["kernel"])
            reduced = max(1, min(c_in, c_out) // 2)
            hw = math.prod(_single(conv.output_shape)[2:])  # type: ignore[index]
            before = hw * c_in * c_out * k // g.get("groups", 1)
            after = hw * (c_in * reduced + reduced * c_out * k)
            if after >= before:
                continue
            findings.append(Finding(
                "reduce_1x1", conv.name,
                f"{module.name} branch {branch.name.rsplit('.', 1)[-1]}: {'x'.join(map(str, g['kernel']))} conv on "
                f"the full {c_in}-channel input costs {_si(conv.macs)} MACs; a 1x1 reduction to {reduced} channels "
                f"first costs {_si(after * report.batch_size)} ({1 - after / before:.0%} less; GoogLeNet Sec. 4)",
                saving_macs=(before - after) * report.batch_size, details={"reduce_to": reduced}))
    return findings
