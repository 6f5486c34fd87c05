"""rewrite(model, select, replace): the one driver, on a network the user wrote; compare measures, rewrite does not."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import cnnlab.design.report as report_module
from cnnlab.blocks import ConvNormAct, StackedConv
from cnnlab.design import Skip, apply_transforms, compare, factorize, rewrite


def users_net() -> nn.Sequential:
    """An outside network: plain torch layers, one 5x5 worth factorising, nothing from cnnlab."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 5, padding=2), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(8, 16, 5, padding=2, stride=2), nn.ReLU()),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


def five_by_five(name: str, module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.kernel_size == (5, 5)


def test_select_and_replace_on_a_users_network():
    model = users_net()
    new, record = rewrite(model, five_by_five, lambda c: StackedConv(c.in_channels, c.out_channels, 5, c.stride[0]))
    assert [r.name for r in record.replaced] == ["2", "4.0"] and record.changed
    assert isinstance(new[2], StackedConv) and isinstance(new[4][0], StackedConv)
    assert type(model[2]) is nn.Conv2d  # the input is never modified
    rows = {r.name: r for r in record.replaced}
    # closed form: 5x5 8->8 (+ bias) -> two 3x3 ConvNormAct 8->8 (no bias, BN 2 x 8 each)
    assert rows["2"].params_before == 25 * 8 * 8 + 8 and rows["2"].params_after == 2 * (9 * 8 * 8 + 2 * 8)
    x = torch.randn(2, 3, 16, 16)
    assert new.eval()(x).shape == model.eval()(x).shape == (2, 4)
    # every other layer keeps its name and weights
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith(("2.", "4.0."))}
    assert all(torch.equal(new.state_dict()[k], v) for k, v in kept.items())


def test_select_by_class_or_name_pattern_and_a_replaced_module_is_not_searched_inside():
    model = users_net()
    _, by_class = rewrite(model, nn.Sequential, lambda m: nn.Identity())  # the root itself is a Sequential
    assert [r.name for r in by_class.replaced] == [""]
    new, by_name = rewrite(model, "4", lambda m: nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.ReLU()))
    assert [r.name for r in by_name.replaced] == ["4"] and new[4][0].kernel_size == (3, 3)
    _, by_regex = rewrite(model, "re:[24](\\.0)?", lambda m: m)
    assert [r.name for r in by_regex.replaced] == ["2", "4"]  # 4 replaced whole: 4.0 not visited
    with pytest.raises(TypeError, match="select must be"):
        rewrite(model, 3, lambda m: m)


def test_skip_keeps_the_module_and_says_why():
    def only_stride_1(conv: nn.Conv2d) -> nn.Module:
        if conv.stride != (1, 1):
            raise Skip("strided")
        return StackedConv(conv.in_channels, conv.out_channels, 5)

    new, record = rewrite(users_net(), five_by_five, only_stride_1, transform="mine", options={"k": 5})
    assert [r.name for r in record.replaced] == ["2"] and record.notes == ("4.0: skipped, strided",)
    assert type(new[4][0]) is nn.Conv2d
    assert record.to_dict() == {"transform": "mine", "options": {"k": 5}, "changed": True,
                                "replaced": [record.replaced[0].to_dict()], "notes": ["4.0: skipped, strided"]}


def test_new_modules_follow_the_old_weights_device_and_dtype():
    model = users_net().double()
    new, _ = rewrite(model, five_by_five, lambda c: StackedConv(c.in_channels, c.out_channels, 5, c.stride[0]))
    assert {p.dtype for p in new.parameters()} == {torch.float64}
    with torch.device("meta"):
        meta = users_net()
    new, _ = rewrite(meta, five_by_five, lambda c: ConvNormAct(c.in_channels, c.out_channels, 3, c.stride[0]))
    assert all(p.is_meta for p in new.parameters())


def test_transforming_never_measures_and_compare_measures_each_network_once(monkeypatch):
    calls = []
    real = report_module.analyze
    monkeypatch.setattr(report_module, "analyze", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = users_net()
    new, records = apply_transforms(model, [{"name": "factorize", "args": {}}, {"name": "to_residual", "args": {}}])
    assert calls == [] and [r.transform for r in records] == ["factorize", "to_residual"]
    report = compare(model, new, input_size=(3, 16, 16))
    assert len(calls) == 2 and report.after.params < report.before.params
    unchanged, record = factorize(model, min_kernel=7)
    assert not compare(model, unchanged, record, input_size=(3, 16, 16)).changed and len(calls) == 3
