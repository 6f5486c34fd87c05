"""Global average pooling instead of fully connected layers: fewer parameters, no loss (GoogLeNet: +0.6%).

Szegedy et al., "Going Deeper with Convolutions" (arXiv:1409.4842), Sec. 5: moving from fully connected
layers to average pooling "improved the top-1 accuracy by about 0.6%" (following Lin et al., "Network In
Network", arXiv:1312.4400, Sec. 3.2). Simonyan & Zisserman's VGG-16 (arXiv:1409.1556) holds 123.6 M of its
138.4 M parameters in its three fully connected layers (cnnlab's zoo: ``cnnlab summary vgg16 --depth 1``).

The arms share ``cifar_convnet``'s trunk with two 3x3 convolutions per stage; ``head="fc"`` puts a VGG-style
head on it (max-pool, flatten 128x4x4, FC 512, ReLU, dropout 0.5, FC), ``head="gap"`` a global average pool and
one linear layer.
"""

from __future__ import annotations

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD
from cnnlab.experiments.core import Analysis, Arm, Experiment, Outcome, Reference, mean_pct

PAPER = 'Szegedy et al., "Going Deeper with Convolutions", arXiv:1409.4842'
ARMS = (
    Arm("gap", "cifar_convnet", {"conv": "3x3", "head": "gap"}, label="global average pool + linear"),
    Arm("fc", "cifar_convnet", {"conv": "3x3", "head": "fc"}, label="fully connected head (VGG-style)"),
)
QUICK_IMAGES, QUICK_EPOCHS = 20_000, 5
# fc6 + fc7 + fc8 of vgg16 and the whole net, counted by cnnlab (docs/references.md)
VGG16_FC_PARAMS, VGG16_PARAMS = 123_642_856, 138_357_544


def analyse(outcome: Outcome) -> Analysis:
    """Head parameters exactly; the accuracy claim on the test set."""
    c = outcome.costs
    head_params = c["fc"]["params"] - c["gap"]["params"]
    rows = [
        ("parameters of the whole net: GAP head / FC head", "FC layers hold most parameters (VGG-16: "
         f"{VGG16_FC_PARAMS / VGG16_PARAMS:.0%} of {VGG16_PARAMS:,})",
         f"{c['gap']['params']:,} / {c['fc']['params']:,} (the FC head adds {head_params:,}: "
         f"{head_params / c['fc']['params']:.0%} of the FC net)", "cnnlab.analysis, BatchNorm included"),
        ("MACs per image: GAP / FC", "not stated", f"{c['gap']['macs']:,} / {c['fc']['macs']:,}",
         "cnnlab.analysis convention (conv + linear multiply-accumulates)"),
    ]
    for arm in ("gap", "fc"):
        rows.append((f"{arm}: test accuracy", "+0.6% top-1 for GAP (ImageNet, Sec. 5)" if arm == "gap" else
                     "baseline", mean_pct(outcome.values(arm, "test_acc")), "final epoch"))
    comparisons = [outcome.compare("GAP head beats the FC head (Sec. 5: +0.6% top-1)", "test_acc", "gap", "fc")]
    notes = ["GoogLeNet's +0.6% is ImageNet top-1 of a 22-layer network that kept dropout before its linear "
             "layer; a 0.6-point difference is below the noise of a 1,000-image test set unless many seeds run."]
    return Analysis(rows, comparisons, notes)


EXPERIMENT = Experiment(
    name="gap_vs_fc",
    claim="A global-average-pooling head matches or beats fully connected layers with a fraction of the "
          "parameters.",
    paper=PAPER,
    source="Sec. 5 (and Network In Network, arXiv:1312.4400, Sec. 3.2)",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "11.3 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)",
                               seeds=2),
        "paper": budgets.paper_cifar(5, "~20 h on a 2-core CPU; a GPU: an hour",
                                     "GoogLeNet's recipe is ImageNet-only (a 0.6-point effect needs five seeds)"),
    },
    analyse=analyse,
    references=(
        Reference("average pooling instead of FC", "about +0.6% top-1; dropout still essential", "Sec. 5"),
        Reference("VGG-16 parameters in its FC layers", f"{VGG16_FC_PARAMS:,} of {VGG16_PARAMS:,}",
                  "arXiv:1409.1556 Table 2 configuration D, counted by cnnlab"),
    ),
    train=RESNET_SGD,
)
