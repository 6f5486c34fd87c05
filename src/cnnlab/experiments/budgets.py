"""Training schedules of the papers, compressed to a shorter run so that every budget keeps their shape."""

from __future__ import annotations

import math
from typing import Any


def paper_schedule(images: int, epochs: int, batch_size: int, fractions: tuple[float, ...] = (0.5, 0.75),
                   ) -> dict[str, Any]:
    """The ResNet step schedule (lr / 10 at 32k and 48k of 64k iterations: 50% and 75% of the run) for a run
    of ``epochs`` over ``images`` at ``batch_size``, as TrainConfig keys."""
    steps = epochs * (images // batch_size)
    if steps < 2:
        raise ValueError(f"{epochs} epochs of {images} images at batch {batch_size} is under two steps")
    return {"schedule": "step", "milestones": tuple(max(1, math.floor(f * steps)) for f in fractions)}


# cnnlab's short-run recipe for CPU budgets, chosen before any experiment ran (README: resnet20, 9 epochs of
# one-cycle at lr 0.2, Nesterov, weight decay 5e-4 reached 87.3% on the exact test images); every arm of an
# experiment gets the same one, so the comparison, not the recipe, is what is measured
QUICK_RECIPE = {"schedule": "onecycle", "lr": 0.2, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                "batch_size": 128}
