"""Training recipes as data: a name -> the TrainConfig keys (model included) of a published method, its source
and a one-line description. ``cnnlab train --recipe NAME`` starts from them; ``--config``, MODEL, the flags and
``--set`` override them, in that order; the run directory's config.json holds the resolved config as always.
``cnnlab train --list-recipes`` lists them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnlab.train.config import TrainConfig, from_dict

AIRBENCH = ('K. Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv:2404.00498; '
            "hyperparameters of airbench94 (github.com/KellerJordan/cifar10-airbench, legacy/airbench94.py)")

# airbench states lr and weight decay per 1024 examples for a summed loss and divides both by the Nesterov step
# gain 1 + 1 / (1 - momentum); with cnnlab's mean loss at batch 1024 that is lr 11.5 / (1 + 1 / 0.15) = 1.5 and a
# decay per step of 0.0153 / (1 + 1 / 0.15) = lr * weight_decay, so weight_decay = 0.0153 / 11.5
_MOMENTUM = 0.85
_LR = 11.5 / (1 + 1 / (1 - _MOMENTUM))
_WEIGHT_DECAY = 0.0153 / 11.5
_BIAS_SCALE = 64.0  # BN biases: lr x 64, decay per step unchanged (their weight decay / 64)


@dataclass(frozen=True)
class Recipe:
    """A named set of TrainConfig keys, with what it does and where it comes from."""

    name: str
    description: str
    source: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: str = ""

    def config(self, **overrides: Any) -> TrainConfig:
        """The recipe's TrainConfig with ``overrides`` (type-checked like every config key)."""
        return from_dict({**self.settings, **overrides})


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        "cifar10-94",
        "fastcifar_vgg to 94% on CIFAR-10 in 10 epochs: airbench94's method, from cnnlab's TrainConfig keys",
        AIRBENCH,
        {"model": "fastcifar_vgg", "epochs": 10, "batch_size": 1024, "optimizer": "sgd", "momentum": _MOMENTUM,
         "nesterov": True, "lr": _LR, "weight_decay": _WEIGHT_DECAY, "norm_lr_scale": _BIAS_SCALE,
         "norm_weight_decay": _WEIGHT_DECAY / _BIAS_SCALE, "label_smoothing": 0.2, "schedule": "onecycle_linear",
         "onecycle_pct": 0.23, "lr_start_factor": 0.2, "lr_end_factor": 0.07, "crop_padding": 2,
         "crop_reflect": True, "hflip": True, "alternate_flips": True, "whiten_init": True,
         "whiten_bias_epochs": 3, "dirac_init": True, "ema_decay": 0.95 ** 5, "ema_every": 5,
         "ema_warmup_power": 3.0, "lookahead": True, "tta": "flip_translate",
         "eval_every": 1000, "eval_batch_size": 1000},
        notes="10 epochs of 48 steps (480) where airbench trains 9.9 (476); eval_every 1000: only the final "
              "evaluation runs (six views per test image); bfloat16 autocast where the CPU has it (airbench: "
              "fp16 weights on a GPU)",
    ),
    Recipe(
        "cifar10-resnet20",
        "resnet20 on CIFAR-10, the paper's schedule: SGD 0.1, /10 at 50% and 75% of the run (32k and 48k of 64k "
        "iterations; 164 epochs here)",
        'He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition", CVPR, arXiv:1512.03385, '
        "Sec. 4.2 (TrainConfig's defaults)",
        {"model": "resnet20"},
    ),
)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a ValueError listing the close and the known ones."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, list(RECIPES), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown recipe {name!r}; {hint}known: {', '.join(RECIPES)} (cnnlab train --list-recipes)")
    return RECIPES[name]


def describe_recipes() -> str:
    """One block per recipe: name and description, then its source (the text of ``--list-recipes``)."""
    width = max(len(n) for n in RECIPES)
    lines = []
    for r in RECIPES.values():
        lines.append(f"{r.name.ljust(width)}  {r.description}")
        lines.append(f"{' ' * width}  source: {r.source}")
        if r.notes:
            lines.append(f"{' ' * width}  notes: {r.notes}")
    return "\n".join(lines)
