"""Deciding whether a measured difference is the paper's effect, its opposite, or noise.

A claim compares two arms on one metric (mean over seeds). The noise of each arm's mean is the larger of
two estimates: the spread over seeds (standard error, when there are at least two seeds) and the sampling
error of an accuracy measured on ``n`` images (binomial, ``sqrt(p (1 - p) / n)``), which is what a single
seed cannot show. A difference counts when it exceeds ``z`` standard errors of the difference (z = 2, about
95%); smaller ones are "within noise" and decide nothing.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_RESOLVED = "not resolved at this budget (difference within noise)"
NO_VERDICT = "no verdict (smoke budget: synthetic data, seconds of training)"
EXPECTATIONS = ("greater", "not_less")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("no values to summarise: the arm has no finished runs")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def standard_error(values: Sequence[float], n_images: int, value_se: float | None = None) -> float:
    """Standard error of the mean of ``values`` (accuracies or error rates in 0..1, each on ``n_images``);
    ``value_se`` replaces the binomial error of one value (for derived values such as a gap between arms)."""
    mean, std = mean_std(values)
    seeds = len(values)
    one = math.sqrt(max(mean * (1 - mean), 0.0) / max(n_images, 1)) if value_se is None else value_se
    binomial = one / math.sqrt(seeds)
    spread = std / math.sqrt(seeds) if seeds > 1 else 0.0
    return max(binomial, spread)


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b`` on one metric, where the paper expects ``a`` greater (or not less) than ``b``."""

    claim: str
    metric: str
    a: str
    b: str
    a_values: tuple[float, ...]
    b_values: tuple[float, ...]
    n_images: int
    expect: str = "greater"
    z: float = 2.0
    value_se: float | None = None  # standard error of one value when it is not a plain accuracy
    unit: str = "%"  # "%": values are fractions shown as percent; anything else is shown as it is

    def __post_init__(self) -> None:
        if self.expect not in EXPECTATIONS:
            raise ValueError(f"expect must be one of {EXPECTATIONS}, got {self.expect!r}")

    @property
    def difference(self) -> float:
        return mean_std(self.a_values)[0] - mean_std(self.b_values)[0]

    @property
    def noise(self) -> float:
        """``z`` standard errors of the difference: what a difference must exceed to count."""
        se = math.hypot(standard_error(self.a_values, self.n_images, self.value_se),
                        standard_error(self.b_values, self.n_images, self.value_se))
        return self.z * se

    @property
    def outcome(self) -> str:
        d, noise = self.difference, self.noise
        if self.expect == "greater":
            return REPRODUCED if d > noise else NOT_REPRODUCED if d < -noise else NOT_RESOLVED
        return NOT_REPRODUCED if d < -noise else REPRODUCED  # "not less": anything but a clear loss agrees

    def describe(self) -> str:
        """One line with the numbers that decided the outcome."""
        unit_scale, unit = (100.0, "%") if self.unit == "%" else (1.0, f" {self.unit}")
        (ma, sa), (mb, sb) = mean_std(self.a_values), mean_std(self.b_values)
        relation = ">" if self.expect == "greater" else ">="
        basis = f", {self.n_images} images" if self.value_se is None else ", the stated error of one value"
        return (f"{self.claim}: {self.metric} {self.a} {ma * unit_scale:.2f}{unit} (sd {sa * unit_scale:.2f}, "
                f"n={len(self.a_values)}) vs {self.b} {mb * unit_scale:.2f}{unit} (sd {sb * unit_scale:.2f}, "
                f"n={len(self.b_values)}); difference {self.difference * unit_scale:+.2f}{unit}, noise "
                f"+/-{self.noise * unit_scale:.2f}{unit} ({self.z:g} SE{basis}); paper: "
                f"{self.a} {relation} {self.b} -> {self.outcome}")


def overall(outcomes: Sequence[str]) -> str:
    """All claims reproduced -> reproduced; any clear opposite -> not reproduced; else not resolved."""
    if not outcomes:
        return NOT_RESOLVED
    if any(o == NOT_REPRODUCED for o in outcomes):
        return NOT_REPRODUCED
    if all(o == REPRODUCED for o in outcomes):
        return REPRODUCED
    return NOT_RESOLVED
