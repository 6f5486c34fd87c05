"""Factorising convolutions: a 5x5 as two 3x3 (28% cheaper), a 3x3 as 3x1 then 1x3 (33% cheaper).

Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for Computer Vision"
(arXiv:1512.00567), Sec. 3.1: two stacked 3x3 cover a 5x5's field with (9 + 9) / 25 of its computation
("a relative gain of 28%") and lose no expressiveness; the control experiment of Fig. 2 puts a ReLU between
the two factors (77.2% top-1) against a linear first factor (76.2%). Sec. 3.2: 3x1 then 1x3 is "33% cheaper"
than a 3x3 at equal filters; it "does not work well on early layers" but does on 12x12 to 20x20 grids.

The network is ``cifar_convnet`` (cnnlab's zoo): three stages of widths 32 / 64 / 128 on 32 / 16 / 8 grids,
each a 3x3 transition and then the studied C -> C convolution, which is what the arms change.
"""

from __future__ import annotations

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD
from cnnlab.experiments.core import Analysis, Arm, Experiment, Outcome, Reference, mean_pct

PAPER = 'Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", arXiv:1512.00567'
WIDTHS, GRIDS = (32, 64, 128), (32, 16, 8)
# MACs of the studied convolutions as one 5x5 each: sum of 25 * C^2 * H * W (what the savings are relative to)
STUDIED_5X5_MACS = sum(25 * c * c * g * g for c, g in zip(WIDTHS, GRIDS))

ARMS = (
    Arm("conv5x5", "cifar_convnet", {"conv": "5x5"}, label="5x5"),
    Arm("conv3x3", "cifar_convnet", {"conv": "3x3"}, label="two 3x3 (ReLU between)"),
    Arm("conv3x3_linear", "cifar_convnet", {"conv": "3x3_linear"}, label="two 3x3 (linear between)"),
    Arm("asymmetric", "cifar_convnet", {"conv": "asymmetric"}, label="two (3x1 + 1x3)"),
)
QUICK_IMAGES, QUICK_EPOCHS = 20_000, 4


def analyse(outcome: Outcome) -> Analysis:
    """Exact savings from the analyser's MACs; accuracy claims on the test set."""
    macs = {arm: c["macs"] for arm, c in outcome.costs.items()}
    params = {arm: c["params"] for arm, c in outcome.costs.items()}
    rows = []
    if "conv5x5" in macs and "conv3x3" in macs:
        saved = (macs["conv5x5"] - macs["conv3x3"]) / STUDIED_5X5_MACS
        rows.append(("5x5 -> two 3x3: MACs saved on the factorised layers", "28% ((9 + 9) / 25, Sec. 3.1)",
                     f"{100 * saved:.1f}% ({macs['conv5x5']:,} -> {macs['conv3x3']:,} MACs for the whole net: "
                     f"{100 * (1 - macs['conv3x3'] / macs['conv5x5']):.1f}% less)",
                     "cnnlab.analysis MACs; the rest of the net is common to both arms"))
        rows.append(("5x5 -> two 3x3: parameters of the whole net", "28% fewer weights in the factorised layers",
                     f"{params['conv5x5']:,} -> {params['conv3x3']:,} "
                     f"({100 * (1 - params['conv3x3'] / params['conv5x5']):.1f}% less)",
                     "BatchNorm of the extra layer included"))
    if "conv3x3" in macs and "asymmetric" in macs:
        studied_3x3 = STUDIED_5X5_MACS * 18 / 25
        saved = (macs["conv3x3"] - macs["asymmetric"]) / studied_3x3
        rows.append(("3x3 -> 3x1 + 1x3: MACs saved on the factorised layers", "33% (6 / 9, Sec. 3.2)",
                     f"{100 * saved:.1f}% ({macs['conv3x3']:,} -> {macs['asymmetric']:,} MACs for the whole "
                     f"net)", "cnnlab.analysis MACs"))
    for arm in (a.name for a in ARMS if a.name in outcome.costs):
        speed = outcome.values(arm, "images_per_s")
        rows.append((f"{arm}: test accuracy / training images per s",
                     {"conv3x3": "77.2% top-1 (ImageNet, Fig. 2)", "conv3x3_linear": "76.2% top-1 (Fig. 2)"}.get(
                         arm, "not reported"),
                     f"{mean_pct(outcome.values(arm, 'test_acc'))} / "
                     f"{(sum(speed) / len(speed)) if speed else float('nan'):.0f} img/s",
                     "final epoch; images/s: median over epochs, training steps only"))
    comparisons = [
        outcome.compare("two 3x3 lose nothing against the 5x5 (Sec. 3.1)", "test_acc", "conv3x3", "conv5x5",
                        expect="not_less"),
        outcome.compare("ReLU between the factors beats a linear factorisation (Fig. 2)", "test_acc", "conv3x3",
                        "conv3x3_linear"),
    ]
    notes = ["The asymmetric arm factorises every stage, including the 32x32 one where the paper says it does not "
             "work well (Sec. 3.2); its accuracy is measured and shown, not judged.",
             "The paper's accuracies are ImageNet top-1 of Inception networks; here the same design choices are "
             "compared on CIFAR-10 with a small network, so only the direction is comparable."]
    return Analysis(rows, comparisons, notes)


EXPERIMENT = Experiment(
    name="factorization",
    claim="Two 3x3 convolutions do a 5x5's work at 72% of its cost (ReLU between them helps); 3x1 + 1x3 is 33% "
          "cheaper than 3x3.",
    paper=PAPER,
    source="Sec. 3.1, Sec. 3.2, Fig. 2",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "8.9 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)"),
        "paper": budgets.paper_cifar(3, "~30 h on a 2-core CPU; a GPU: an hour",
                                     "no CIFAR recipe in the paper (ImageNet, RMSProp, 100 epochs)"),
    },
    analyse=analyse,
    references=(
        Reference("5x5 -> two 3x3", "(9 + 9) / 25 of the computation: 28% saved", "Sec. 3.1"),
        Reference("ReLU vs linear between the factors", "77.2% vs 76.2% top-1 (ImageNet)", "Sec. 3.1, Fig. 2"),
        Reference("3x3 -> 3x1 + 1x3", "33% cheaper; poor on early layers, good on 12x12-20x20 grids", "Sec. 3.2"),
    ),
    train=RESNET_SGD,
)
