"""Auxiliary classifiers: they do not speed up early training; they regularise and lift the final plateau.

Szegedy et al., "Going Deeper with Convolutions" (arXiv:1409.4842), Sec. 5: side classifiers on intermediate
modules, their losses added with weight 0.3, meant to fight vanishing gradients. Szegedy et al., "Rethinking
the Inception Architecture for Computer Vision" (arXiv:1512.00567), Sec. 4: auxiliary classifiers "did not
result in improved convergence early in the training"; near the end the network with them reaches a slightly
higher plateau; they act as a regulariser.

The arms are ``cifar_inception`` with and without one GoogLeNet-style auxiliary head after module 4a.
"""

from __future__ import annotations

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD
from cnnlab.experiments.core import Analysis, Arm, Experiment, Outcome, Reference, mean_pct

PAPER = 'Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", arXiv:1512.00567'
ARMS = (
    Arm("aux", "cifar_inception", {"aux": True}, label="with an auxiliary head (loss weight 0.3)"),
    Arm("no_aux", "cifar_inception", {"aux": False}, label="without"),
)
QUICK_IMAGES, QUICK_EPOCHS = 20_000, 4


def analyse(outcome: Outcome) -> Analysis:
    """Early (first epoch) and final test accuracy of both arms."""
    c = outcome.costs
    rows = [("parameters trained / used at inference (aux)", "the aux heads are discarded at inference",
             f"{c['aux']['trained_params']:,} / {c['aux']['params']:,}", "cnnlab.analysis in train / eval mode")]
    for arm in ("aux", "no_aux"):
        rows.append((f"{arm}: test accuracy after epoch 1 / final", "no early gain; slightly higher plateau",
                     f"{mean_pct(outcome.values(arm, 'epoch1:test_acc'))} / "
                     f"{mean_pct(outcome.values(arm, 'test_acc'))}", "test set given"))
    comparisons = [
        outcome.compare("no faster early convergence with the aux head (Sec. 4)", "epoch1:test_acc", "no_aux",
                        "aux", expect="not_less"),
        outcome.compare("the aux head lifts the final accuracy (Sec. 4: slightly higher plateau)", "test_acc",
                        "aux", "no_aux"),
    ]
    notes = ["The paper's effect is a fraction of a point on ImageNet after 100 epochs; a short CPU budget "
             "rarely resolves it."]
    return Analysis(rows, comparisons, notes)


EXPERIMENT = Experiment(
    name="aux_classifiers",
    claim="Auxiliary classifiers do not speed up early training but act as regularisers (slightly higher final "
          "accuracy).",
    paper=PAPER,
    source="Sec. 4 (and GoogLeNet, arXiv:1409.4842, Sec. 5)",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "6.3 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)"),
        "paper": budgets.paper_cifar(3, "~30 h on a 2-core CPU; a GPU: an hour",
                                     "the papers' recipes are ImageNet-only"),
    },
    analyse=analyse,
    references=(
        Reference("early convergence", "no improvement early in training", "arXiv:1512.00567 Sec. 4"),
        Reference("final accuracy", "slightly higher plateau; the aux head acts as a regulariser",
                  "arXiv:1512.00567 Sec. 4"),
        Reference("aux loss weight", "0.3", "arXiv:1409.4842 Sec. 5"),
    ),
    train=RESNET_SGD,
)
