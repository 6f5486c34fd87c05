"""The op table and user rules: closed-form figures, a rule per module type or op name, the zoo fully covered."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.analysis import Cost, analyze
from cnnlab.analysis.ops import OPS, OTHER_KINDS, UNKNOWN, rule_for


class Scaler(nn.Module):
    """A user's module: a 1x1 convolution followed by an op the table does not know (cumsum)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(c, c, 1, bias=False)

    def forward(self, x):
        return torch.cumsum(self.proj(x), dim=1)


class FastScaler(Scaler):
    pass


def net() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), Scaler(4), nn.ReLU(), FastScaler(4))


def test_without_rules_the_inner_ops_are_counted_and_cumsum_is_unknown():
    rep = analyze(net(), (3, 5, 5))
    assert rep.layer("1").macs == 25 * 4 * 4 and rep.layer("1").unknown_ops == ["aten.cumsum.default"]
    assert rep.macs == 25 * 4 * 3 * 9 + 2 * 25 * 4 * 4


def test_module_rule_replaces_the_count_of_that_type_and_its_subclasses():
    calls = []

    def rule(module, inputs, output):
        calls.append(type(module).__name__)
        return Cost(1000, "elementwise", output.numel())

    rep = analyze(net(), (3, 5, 5), op_rules={Scaler: rule})
    assert calls == ["Scaler", "FastScaler"]  # a subclass without a rule of its own takes its base's
    for name in ("1", "3"):
        row = rep.layer(name)
        assert (row.macs, row.other_ops_by_kind, row.unknown_ops) == (1000, {"elementwise": 100}, [])
        assert row.self_macs == 1000 and rep.layer(name + ".proj").macs == 0  # the rule covers its inside
        assert row.params == 16 and row.rf is not None  # parameters and receptive field are still measured
    assert rep.macs == 25 * 4 * 3 * 9 + 2 * 1000 and rep.unknown_ops == []
    assert rep.other_ops_by_kind == {"elementwise": 200, "activation": 100}
    # the subclass's own rule wins over its base's; an int is MACs
    rep = analyze(net(), (3, 5, 5), op_rules={Scaler: lambda m, i, o: 7, FastScaler: lambda m, i, o: 9})
    assert (rep.layer("1").macs, rep.layer("3").macs) == (7, 9)


def test_op_rule_by_name_counts_an_unknown_op():
    rule = {"aten.cumsum": lambda args, kwargs, out: Cost(0, "reduction", out.numel())}
    rep = analyze(net(), (3, 5, 5), op_rules=rule)
    assert rep.unknown_ops == [] and rep.other_ops_by_kind["reduction"] == 2 * 100
    assert rep.macs == 25 * 4 * 3 * 9 + 2 * 25 * 4 * 4
    # overriding a known op: convolutions at one MAC per output element
    rep = analyze(net(), (3, 5, 5), op_rules={"convolution": lambda a, k, out: out.numel()})
    assert rep.macs == 3 * 100 and rep.layer("0").rf.size == (3, 3)  # the op keeps its kind: fields still move


def test_bad_rules_say_what_to_return():
    with pytest.raises(TypeError, match="nn.Module subclasses or aten op names"):
        analyze(net(), (3, 5, 5), op_rules={3: lambda *a: 0})
    with pytest.raises(TypeError, match="must be a function"):
        analyze(net(), (3, 5, 5), op_rules={Scaler: 5})
    with pytest.raises(TypeError, match="return an int .MACs. or cnnlab.analysis.ops.Cost"):
        analyze(net(), (3, 5, 5), op_rules={Scaler: lambda m, i, o: Cost(0, "flops", 3)})


def test_rules_are_per_call_not_global():
    analyze(net(), (3, 5, 5), op_rules={"aten.cumsum": lambda a, k, o: 1})
    assert analyze(net(), (3, 5, 5)).unknown_ops  # the table itself is unchanged
    assert rule_for(torch.ops.aten.cumsum.default) is UNKNOWN


def test_table_kinds_and_formulas():
    assert {r.kind for r in OPS.values()} >= {"conv", "mm", "norm", "max_pool", "avg_pool", "adaptive", "free"}
    x, w = torch.empty(2, 3, 8, 8, device="meta"), torch.empty(5, 3, 3, 3, device="meta")
    out = torch.empty(2, 5, 6, 6, device="meta")
    conv = rule_for(torch.ops.aten.convolution.default)
    assert conv.formula((x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1), {}, out) == (2 * 36 * 5 * 27, "bias", 0)
    assert rule_for(torch.ops.aten.add.Tensor).kind == "elementwise"  # a pointwise op by torch's tag
    assert rule_for(torch.ops.aten.view.default).kind == "free"
    assert set(OTHER_KINDS) == {"bias", "norm", "activation", "pool", "elementwise", "reduction"}


def zoo() -> list:
    """Every zoo name; the 1000-layer ones are slow."""
    deep = ("resnet1202", "preact_resnet1001")
    return [pytest.param(n, marks=pytest.mark.slow) if n in deep else n for n in cnnlab.list_models()]


@pytest.mark.parametrize("name", zoo())
def test_every_leaf_type_of_the_zoo_is_counted(name):
    """A zoo model whose leaf module runs an op without a rule fails here, naming the module type."""
    uncounted = set()
    for training in (False, True):  # train mode runs the auxiliary heads; batch 2 for batch norm on a 1x1 map
        rep = analyze(name, batch_size=2, training=training)
        uncounted |= {f"{r.type}: {', '.join(r.unknown_ops)}" for r in rep.layers if r.unknown_ops}
    assert not uncounted, f"{name}: module types running ops without a rule in cnnlab.analysis.ops: {sorted(uncounted)}"
