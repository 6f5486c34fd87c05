"""The three budgets every experiment has, and the papers' schedules compressed to a shorter run.

``smoke``: synthetic data, two steps, for the test suite. ``quick``: a subset of CIFAR-10 for a 2-core CPU,
with cnnlab's short recipe or the paper's schedule compressed. ``paper``: the paper's recipe (or, for the
ImageNet papers, 100 CIFAR epochs of SGD with the ResNet schedule).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnnlab.experiments.core import Budget
from cnnlab.train.optim import milestone_steps

# He et al. 2015 (arXiv:1512.03385), Sec. 4.2: SGD, momentum 0.9, weight decay 1e-4, batch 128, lr 0.1
RESNET_SGD = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128}
SMOKE_TRAIN = {"max_steps": 2, "epochs": 1, "batch_size": 16, "eval_batch_size": 64}


def paper_schedule(images: int, epochs: int, batch_size: int, fractions: tuple[float, ...] = (0.5, 0.75),
                   ) -> dict[str, Any]:
    """The ResNet step schedule (lr / 10 at 32k and 48k of 64k iterations: 50% and 75% of the run) for a run
    of ``epochs`` over ``images`` at ``batch_size``, as TrainConfig keys. The milestones are the steps that the
    fractions resolve to in such a run (as ``milestones=(0.5, 0.75)`` would), kept as integer steps so that the
    recorded configs of the experiments stay as they were."""
    steps = epochs * (images // batch_size)
    if steps < 2:
        raise ValueError(f"{epochs} epochs of {images} images at batch {batch_size} is under two steps")
    return {"schedule": "step", "milestones": milestone_steps(tuple(float(f) for f in fractions), steps)}


# cnnlab's short-run recipe for CPU budgets, chosen before any experiment ran (README: resnet20, 9 epochs of
# one-cycle at lr 0.2, Nesterov, weight decay 5e-4 reached 87.3% on the exact test images); every arm of an
# experiment gets the same one, so the comparison, not the recipe, is what is measured
QUICK_RECIPE = {"schedule": "onecycle", "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                "batch_size": 128}


def smoke(arms: tuple[str, ...] | None = None) -> Budget:
    """Two steps on synthetic tensors: the test suite's budget (no verdict)."""
    return Budget("smoke", SMOKE_TRAIN, arms=arms, note="synthetic data, a few steps: exercises the code path only")


def quick(images: int, epochs: int, minutes: str, *, seeds: int = 1, arms: tuple[str, ...] | None = None,
          schedule: Mapping[str, Any] | None = None, scaled: str = "") -> Budget:
    """``epochs`` over the first ``images`` training images with ``schedule`` (default: cnnlab's QUICK_RECIPE)."""
    recipe = "cnnlab's short CPU recipe (one-cycle, lr 0.2, Nesterov, weight decay 5e-4)" if schedule is None \
        else "the paper's step schedule compressed to the run (lr / 10 at 50% and 75%)"
    note = (f"{scaled + '; ' if scaled else ''}the first {images:,} training images for {epochs} epochs of "
            f"{recipe}; {seeds} seed{'s' if seeds > 1 else ''} per arm")
    train = {"subset": images, "epochs": epochs,
             **(QUICK_RECIPE if schedule is None else {**RESNET_SGD, **schedule})}
    return Budget("quick", train, seeds=seeds, arms=arms, minutes=minutes, note=note)


def paper_cifar(seeds: int, minutes: str, why: str, epochs: int = 100) -> Budget:
    """For the ImageNet papers: ``epochs`` of SGD on all of CIFAR-10 with the ResNet step schedule."""
    return Budget("paper", {"epochs": epochs, **paper_schedule(50_000, epochs, 128)}, seeds=seeds, minutes=minutes,
                  note=f"{why}: {epochs} epochs of SGD with the ResNet step schedule, {seeds} seeds")
