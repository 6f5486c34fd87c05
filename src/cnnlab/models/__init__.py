"""The model zoo: every classic network, declared as data and built from cnnlab.blocks.

Importing this package registers every family module listed in ``_FAMILIES``.
"""

from __future__ import annotations

import importlib
import pkgutil

from torch import nn

from cnnlab._gc import gc_paused
from cnnlab.models.convert import from_timm, from_torchvision
from cnnlab.models.network import ModelOutput, Network, aux_loss
from cnnlab.registry import MODELS, ModelCard, UnknownModelError

__all__ = ["ModelOutput", "Network", "aux_loss", "create_model", "list_models", "model_card",
           "UnknownModelError", "from_timm", "from_torchvision"]

# every module in this package that is not infrastructure is a family file that registers models
_INFRASTRUCTURE = {"network", "spec", "build", "convert"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def create_model(name: str, num_classes: int | None = None, **options) -> nn.Module:
    """Build a zoo model by name; ``num_classes`` defaults to the card's (1000 for ImageNet, 10 for CIFAR)."""
    entry = MODELS.get(name)
    with gc_paused():  # resnet1202 on meta: 0.80 -> 0.63 s (benchmarks/bench_zoo.py)
        return entry.builder(num_classes=entry.card.num_classes if num_classes is None else num_classes, **options)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a shell-style pattern such as ``"resnet*"``."""
    return MODELS.names(pattern)


def model_card(name: str) -> ModelCard:
    """The card of a zoo model: paper, default input size, reference counts and their source."""
    return MODELS.get(name).card
