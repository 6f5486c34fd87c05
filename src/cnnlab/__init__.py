"""cnnlab: design, cost, compare and train convolutional networks from the classic architecture ideas.

Public API (imported lazily so that ``import cnnlab`` stays fast):
``create_model``, ``list_models``, ``model_card`` (the zoo), ``analyze`` (the cost analyser),
``design`` (transforms), ``train`` (the trainer), ``load_run`` (a trained run's network, for inference).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "create_model": "cnnlab.models",
    "list_models": "cnnlab.models",
    "model_card": "cnnlab.models",
    "aux_loss": "cnnlab.models",
    "analyze": "cnnlab.analysis",
    "CostReport": "cnnlab.analysis",
    "TrainConfig": "cnnlab.train",
    "Trainer": "cnnlab.train",
    "load_run": "cnnlab.train",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("blocks", "models", "analysis", "design", "data", "train", "experiments"):
        return importlib.import_module(f"cnnlab.{name}")
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
