"""Identity mappings: pre-activation residual units train at least as well, and better the deeper the net.

He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks" (arXiv:1603.05027), Sec. 4 and Table 3:
moving BN and ReLU before the convolutions (the "full pre-activation" unit, Fig. 4e) makes the shortcut path
a clean identity; on CIFAR-10 ResNet-110 improves from 6.61% to 6.37% test error and ResNet-1001 reaches
4.92%, where the original unit's 1001-layer net is worse than its 110-layer one; the gain grows with depth.
"""

from __future__ import annotations

import math

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD, paper_schedule
from cnnlab.experiments.core import Analysis, Arm, Budget, Experiment, Outcome, Reference, mean_pct
from cnnlab.experiments.verdict import Comparison

PAPER = 'He et al., "Identity Mappings in Deep Residual Networks", arXiv:1603.05027'
# He et al. 2015, Sec. 4.2: the 110-layer nets warm up at lr 0.01 for about 400 iterations
ARMS = tuple(Arm(f"{kind}{d}", f"{kind}{d}", label=f"{kind.replace('_', '-')}{d}",
                 train={"warmup_steps": 400} if d == 110 else {})
             for d in (20, 56, 110) for kind in ("resnet", "preact_resnet"))
# 5 epochs: 6 took 15.0 min alone on 2 cores (2026-12-02), at the quick budget's limit
QUICK_IMAGES, QUICK_EPOCHS = 15_000, 5
SMALL = ("resnet20", "preact_resnet20", "resnet56", "preact_resnet56")


def analyse(outcome: Outcome) -> Analysis:
    """Training error of original vs pre-activation units at each depth, and whether the gap grows."""
    ran = {r.arm for r in outcome.runs}
    depths = sorted(int(a[len("resnet"):]) for a in ran if a.startswith("resnet") and f"preact_{a}" in ran)
    rows = []
    for d in depths:
        paper = {110: "6.61% -> 6.37% test error (Table 3)"}.get(d, "not in the paper (CIFAR: 110, 164, 1001)")
        rows.append((f"depth {d}: training / test error, original -> pre-activation", paper,
                     " / ".join(f"{mean_pct(outcome.values(f'resnet{d}', err))} -> "
                                f"{mean_pct(outcome.values(f'preact_resnet{d}', err))}"
                                for err in ("train_err", "test_err")), "final epoch"))
    hi, lo = depths[-1], depths[0]
    comparisons = [outcome.compare(f"pre-activation trains at least as well at depth {hi}", "train_acc",
                                   f"preact_resnet{hi}", f"resnet{hi}", expect="not_less")]
    if hi != lo:
        gaps = {d: [p - o for p, o in zip(outcome.values(f"preact_resnet{d}", "train_acc"),
                                          outcome.values(f"resnet{d}", "train_acc"))] for d in (lo, hi)}
        # a gap is a difference of two accuracies: its error is sqrt(2) binomial errors at their mean level
        level = sum(outcome.values(f"resnet{hi}", "train_acc")) / max(1, len(gaps[hi]))
        se = math.sqrt(2 * level * (1 - level) / max(outcome.train_images, 1))
        comparisons.append(Comparison(f"the pre-activation gain grows from depth {lo} to {hi}",
                                      "training-accuracy gain", f"depth {hi}", f"depth {lo}", tuple(gaps[hi]),
                                      tuple(gaps[lo]), outcome.train_images, value_se=se))
    return Analysis(rows, comparisons, ["Training error is the error on the augmented training batches of the "
                                        "last epoch."])


EXPERIMENT = Experiment(
    name="identity_mappings",
    claim="Pre-activation residual units train at least as well as the original ones, and the gap grows with "
          "depth.",
    paper=PAPER,
    source="Sec. 4, Fig. 4, Table 3",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(SMALL),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "13.1 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)",
                               arms=SMALL,
                               schedule=paper_schedule(QUICK_IMAGES, QUICK_EPOCHS, 128),
                               scaled="depths 20 and 56 (the paper: 110, 164, 1001)"),
        "paper": Budget("paper", {"epochs": 164, "milestones": (32_000, 48_000)},
                        arms=("resnet110", "preact_resnet110"),
                        minutes="~60 h on a 2-core CPU; a GPU: hours",
                        note="the paper's CIFAR recipe: SGD 0.1 (warm-up at 0.01 for 400 iterations), momentum "
                             "0.9, weight decay 1e-4, batch 128, lr / 10 at 32k and 48k, 64k iterations"),
    },
    analyse=analyse,
    references=(
        Reference("ResNet-110, CIFAR-10 test error", "original 6.61%, pre-activation 6.37%", "Table 3"),
        Reference("ResNet-1001, CIFAR-10 test error", "pre-activation 4.92% (batch 128)", "Table 4 / abstract"),
    ),
    train=RESNET_SGD,
)
