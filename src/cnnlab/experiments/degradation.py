"""The degradation problem: deeper plain networks train worse, deeper residual networks do not.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition" (arXiv:1512.03385), Sec. 4.2, Fig. 6 and
Table 6: on CIFAR-10, plain nets of 20 -> 56 layers have *higher* training error as they deepen (Fig. 6 left;
plain-110 is above 60% and not drawn), while ResNets of the same depths have *lower* training error as they
deepen (Fig. 6 middle). Both use option-A shortcuts, so the pairs have identical parameters.
"""

from __future__ import annotations

from cnnlab.experiments import budgets
from cnnlab.experiments.budgets import RESNET_SGD, paper_schedule
from cnnlab.experiments.core import Analysis, Arm, Budget, Experiment, Outcome, Reference, mean_pct

PAPER = 'He et al., "Deep Residual Learning for Image Recognition", arXiv:1512.03385'
DEPTHS = (20, 32, 44, 56)
# Table 6 test errors (%) of the ResNets; the plain nets have curves only (Fig. 6)
PAPER_TEST_ERROR = {20: "8.75", 32: "7.51", 44: "7.17", 56: "6.97", 110: "6.43"}
ARMS = tuple(Arm(f"{kind}{d}", f"{kind}{d}", label=f"{kind}-{d}") for kind in ("plain", "resnet") for d in DEPTHS) \
    + (Arm("resnet110", "resnet110", label="resnet-110", train={"warmup_steps": 400}),)

# 5 epochs: 6 took 16.3 min alone on 2 cores (2026-12-02), over the quick budget's 15
QUICK_IMAGES, QUICK_EPOCHS = 15_000, 5


def _depth(arm: str) -> int:
    return int("".join(ch for ch in arm if ch.isdigit()))


def analyse(outcome: Outcome) -> Analysis:
    """Training error ordering of plain and residual nets at the shallowest and deepest depth run."""
    ran = {r.arm for r in outcome.runs}
    depths = sorted(d for d in DEPTHS if f"plain{d}" in ran and f"resnet{d}" in ran)
    lo, hi = depths[0], depths[-1]
    comparisons = [
        outcome.compare(f"plain-{hi} trains worse than plain-{lo} (Fig. 6 left)", "train_err", f"plain{hi}",
                        f"plain{lo}"),
        outcome.compare(f"resnet-{hi} trains better than resnet-{lo} (Fig. 6 middle)", "train_err",
                        f"resnet{lo}", f"resnet{hi}"),
        outcome.compare(f"at depth {hi}, the residual net trains better than the plain one", "train_err",
                        f"plain{hi}", f"resnet{hi}"),
    ]
    rows = []
    for arm in sorted(ran, key=lambda a: (a.startswith("resnet"), _depth(a))):
        depth = _depth(arm)
        paper = f"{PAPER_TEST_ERROR[depth]}% test error (Table 6, 64k iterations)" if arm.startswith("resnet") \
            else "curve only (Fig. 6 left)"
        train, test = (mean_pct(outcome.values(arm, err)) for err in ("train_err", "test_err"))
        rows.append((f"{arm}: training / test error", paper, f"{train} / {test}", "final epoch; training error "
                     "on the augmented batches of that epoch, as the paper's curves"))
    steps = max((r.epochs[-1].get("step", 0) for r in outcome.runs if r.epochs), default=0)
    notes = [f"Depths compared: {lo} and {hi}. Training error is the error on the training batches of the last "
             f"epoch (with augmentation), as in the paper's Fig. 6; test error on the test set given.",
             f"Compared after {steps:,} iterations; the paper's curves and Table 6 run to 64,000. An ordering "
             f"measured this early says how fast each net starts to learn, not where it ends."]
    return Analysis(rows, comparisons, notes)


EXPERIMENT = Experiment(
    name="degradation",
    claim="Deeper plain nets have higher training error; deeper residual nets have lower (CIFAR-10).",
    paper=PAPER,
    source="Sec. 4.2, Fig. 6, Table 6",
    arms=ARMS,
    budgets={
        "smoke": budgets.smoke(("plain20", "plain32", "resnet20", "resnet32")),
        "quick": budgets.quick(QUICK_IMAGES, QUICK_EPOCHS,
                               "12.7 min measured alone on 2 cores (native-bf16 AMD EPYC, 2026-12-02)",
                               arms=("plain20", "plain56", "resnet20", "resnet56"),
                               schedule=paper_schedule(QUICK_IMAGES, QUICK_EPOCHS, 128),
                               scaled="depths 20 and 56 only (the paper: 50k images, 64k iterations = ~164 epochs)"),
        "paper": Budget("paper", {"epochs": 164, "milestones": (32_000, 48_000)},
                        minutes="~40 h on a 2-core CPU; a GPU: hours",
                        note="the paper's recipe: SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, lr / 10 "
                             "at 32k and 48k iterations, 64k iterations; resnet-110 warms up at lr 0.01"),
    },
    analyse=analyse,
    references=(
        Reference("training error ordering", "plain: 56 > 44 > 32 > 20; ResNet: 20 > 32 > 44 > 56",
                  "Fig. 6"),
        Reference("ResNet test error", "20: 8.75%, 32: 7.51%, 44: 7.17%, 56: 6.97%, 110: 6.43%", "Table 6"),
        Reference("plain-110", "training error above 60%, not drawn", "Fig. 6 caption"),
    ),
    train=RESNET_SGD,
)
