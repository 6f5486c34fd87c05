"""1x1 reductions before the expensive 3x3 and 5x5 convolutions of an Inception module.

Szegedy et al., "Going Deeper with Convolutions" (arXiv:1409.4842), Sec. 4, Fig. 2: the "naive" module
convolves its whole input with 3x3 and 5x5 filters, and "even a modest number of 5x5 convolutions can be
prohibitively expensive"; 1x1 convolutions "compute reductions before the expensive 3x3 and 5x5
convolutions", so that width and depth can grow "without an uncontrolled blow-up in computational
complexity" (Sec. 5: the whole network stays within 1.5 billion multiply-adds).

The arms are ``cifar_inception`` (cnnlab's zoo: GoogLeNet's modules 3a, 3b, 4a, 4b at half width on 16x16 and
8x8 grids) with and without the reductions; the module output widths are the same in both.
"""

from __future__ import annotations

import dataclasses

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD
from cnnlab.experiments.core import Analysis, Arm, Experiment, Outcome, Reference, mean_pct

PAPER = 'Szegedy et al., "Going Deeper with Convolutions", arXiv:1409.4842'
ARMS = (
    Arm("reduced", "cifar_inception", {"reduce": True}, label="with 1x1 reductions (Fig. 2b)"),
    Arm("naive", "cifar_inception", {"reduce": False}, label="naive module (Fig. 2a, output widths kept)"),
)
QUICK_IMAGES, QUICK_EPOCHS = 20_000, 4


def analyse(outcome: Outcome) -> Analysis:
    """MACs and parameters exactly; accuracy and training speed measured."""
    c = outcome.costs
    rows = [
        ("MACs per image: reduced / naive", "reductions keep the 3x3 / 5x5 cost in check (Sec. 4)",
         f"{c['reduced']['macs']:,} / {c['naive']['macs']:,} ({c['naive']['macs'] / c['reduced']['macs']:.2f}x "
         f"without reductions)", "cnnlab.analysis, 32x32 input"),
        ("parameters: reduced / naive", "not stated",
         f"{c['reduced']['params']:,} / {c['naive']['params']:,} "
         f"({c['naive']['params'] / c['reduced']['params']:.2f}x)", "BatchNorm included"),
    ]
    for arm in ("reduced", "naive"):
        speed = outcome.values(arm, "images_per_s")
        rows.append((f"{arm}: test accuracy / training images per s", "not reported",
                     f"{mean_pct(outcome.values(arm, 'test_acc'))} / "
                     f"{(sum(speed) / len(speed)) if speed else float('nan'):.0f} img/s",
                     "final epoch; images/s: median over epochs"))
    comparisons = [
        outcome.compare("the reduced module loses no accuracy against the naive one", "test_acc", "reduced",
                        "naive", expect="not_less"),
        # images/s is not a proportion: its noise is the machine's run-to-run variation, said here instead
        dataclasses.replace(outcome.compare("the reduced module trains faster", "images_per_s", "reduced", "naive"),
                            value_se=_speed_se(outcome), unit="img/s"),
    ]
    return Analysis(rows, comparisons, ["Speed is measured on the machine in the environment section; the MACs "
                                        "are machine-independent."])


def _speed_se(outcome: Outcome) -> float:
    """5% of the slower arm's speed: the run-to-run variation of a shared 2-core machine (BENCHMARKS.md)."""
    speeds = [v for arm in ("reduced", "naive") for v in outcome.values(arm, "images_per_s")]
    return 0.05 * min(speeds) if speeds else 0.0


EXPERIMENT = Experiment(
    name="bottleneck_1x1",
    claim="1x1 reductions before the 3x3 and 5x5 branches cut an Inception module's cost several-fold without "
          "costing accuracy.",
    paper=PAPER,
    source="Sec. 4-5, Fig. 2",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "8.6 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)"),
        "paper": budgets.paper_cifar(3, "~40 h on a 2-core CPU; a GPU: an hour",
                                     "GoogLeNet's recipe is ImageNet-only"),
    },
    analyse=analyse,
    references=(
        Reference("why 1x1 reductions", "5x5 convolutions on a wide input are prohibitively expensive; 1x1 "
                  "reductions come first", "Sec. 4, Fig. 2"),
        Reference("budget of the whole network", "1.5 billion multiply-adds at inference", "Sec. 1 / Sec. 5"),
    ),
    train=RESNET_SGD,
)
