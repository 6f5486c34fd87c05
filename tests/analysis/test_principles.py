"""lint: the Rethinking-Inception design checks on nets whose numbers are known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.analysis import analyze
from cnnlab.analysis.principles import lint


def rules(net: nn.Module, size: tuple[int, ...]) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in lint(analyze(net, size)):
        out.setdefault(f.rule, []).append(f)
    return out


@pytest.mark.parametrize("n", [5, 7, 11])
def test_factorizable_kernels_with_savings(n):
    net = nn.Sequential(nn.Conv2d(8, 8, n, padding=n // 2, bias=False), nn.Conv2d(8, 8, 3, padding=1))
    (finding,) = rules(net, (8, 12, 12))["factorize"]
    macs = 12 * 12 * 8 * 8 * n * n
    stacked = 1 - (n - 1) // 2 * 9 / (n * n)  # 5x5 -> two 3x3: 1 - 18/25 = 28%
    asym = 1 - 2 / n
    assert finding.layer == "0"
    assert f"{stacked:.0%}" in finding.message and f"{asym:.0%}" in finding.message
    assert finding.saving_macs == round(macs * max(stacked, asym))
    if n == 5:
        assert "28%" in finding.message and "60%" in finding.message


def test_fc_heavy_with_gap_saving():
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.Flatten(), nn.Linear(64 * 7 * 7, 100), nn.ReLU(),
                        nn.Linear(100, 10))
    (finding,) = rules(net, (3, 7, 7))["fc_heavy"]
    assert finding.layer == "2"
    assert finding.saving_params == 100 * (64 * 49 - 64)  # GAP: 64 inputs instead of 64*7*7
    assert f"{64 * 49 * 100 + 100 + 1010:,}" in finding.message


def test_bottleneck_outside_grid_reduction_and_pool_first():
    class Stages(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wide = nn.Conv2d(3, 64, 3, padding=1)
            self.squeeze = nn.Conv2d(64, 8, 1)                 # 64 -> 8 channels at the same grid: 8x smaller
            self.pool = nn.MaxPool2d(2)                        # grid /4, channels unchanged
            self.reduce = nn.Conv2d(8, 16, 3, stride=2, padding=1)  # grid /4, channels x2: the paper's way

        def forward(self, x):
            return self.reduce(self.pool(self.squeeze(self.wide(x))))

    found = {f.layer: f for f in rules(Stages(), (3, 16, 16))["bottleneck"]}
    assert set(found) == {"squeeze", "pool"}
    assert found["squeeze"].details == {"input_values": 64 * 256, "output_values": 8 * 256, "grid": [16, 16]}


class NaiveInception(nn.Module):
    """GoogLeNet Fig. 2(a): 1x1, 3x3 and 5x5 straight on the input, plus pooling, concatenated."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c, 64, 1)
        self.b3 = nn.Conv2d(c, 128, 3, padding=1)
        self.b5 = nn.Conv2d(c, 32, 5, padding=2)
        self.pool = nn.MaxPool2d(3, 1, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], 1)


def test_missing_1x1_reduction_in_inception_branches():
    found = {f.layer: f for f in rules(NaiveInception(192), (192, 28, 28))["reduce_1x1"]}
    assert set(found) == {"b3", "b5"}
    hw = 28 * 28
    r3 = 64  # half of min(192, 128)
    assert found["b3"].saving_macs == hw * 192 * 128 * 9 - hw * (192 * r3 + r3 * 128 * 9)
    r5 = 16
    assert found["b5"].saving_macs == hw * 192 * 32 * 25 - hw * (192 * r5 + r5 * 32 * 25)


def test_clean_net_has_no_findings_and_bad_thresholds_raise():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    assert lint(analyze(net, (3, 16, 16))) == []
    with pytest.raises(ValueError, match="between 0 and 1"):
        lint(analyze(net, (3, 16, 16)), bottleneck_ratio=2)
