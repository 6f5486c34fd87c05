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

__all__ = ["ModelOutput", "Network", "UntrustedCodeError", "aux_loss", "check_trusted", "create_model",
           "import_object", "is_code_reference", "list_models", "model_card", "UnknownModelError", "from_timm",
           "from_torchvision"]

# every module in this package that is not infrastructure is a family file that registers models
_INFRASTRUCTURE = {"network", "spec", "build", "convert"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def import_object(spec: str) -> object:
    """The object that ``package.module:attr`` (or ``:attr.sub``) names; a one-line ValueError if it cannot be had."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r}: give package.module:callable, such as mypkg.nets:small_cnn")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} from {spec!r} ({exc}); is it installed or on "
                         f"PYTHONPATH?") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}; give package.module:callable")
        target = getattr(target, part)
    return target


class UntrustedCodeError(PermissionError):
    """A file (run directory, checkpoint header, transform recipe, config file) names code that nobody vouched for."""


def is_code_reference(name: str) -> bool:
    """True for ``package.module:callable`` (code to import), False for a registry name (cnnlab's own code)."""
    return ":" in name


def check_trusted(name: str, source: str, *, trusted: bool) -> None:
    """Refuse to import ``name`` when it was read from ``source`` (a file) and the user did not vouch for it.

    Loading a run or a recipe must be as safe as loading a safetensors file: a registry name builds cnnlab's own
    code, but ``package.module:callable`` would import and call whatever the file says (``torch.hub:load`` runs
    a repository's code). The user vouches by naming the callable again or by trusting the file explicitly.
    """
    if is_code_reference(name) and not trusted:
        raise UntrustedCodeError(
            f"{source} names the network {name!r}, code that loading never imports on a file's word: if you trust "
            f"it, name it yourself (CLI: --model {name}; Python: model=...) or pass --trust-run-code "
            f"(Python: trust_code=True)")


def create_model(name: str, num_classes: int | None = None, **options) -> nn.Module:
    """Build a zoo model by name; ``num_classes`` defaults to the card's (1000 for ImageNet, 10 for CIFAR).

    ``name`` may also be ``package.module:callable`` (your own network): it is imported and called with
    ``num_classes`` (when given) and ``options``, and must return an ``nn.Module``.
    """
    if ":" in name:
        factory = import_object(name)
        if not callable(factory):
            raise TypeError(f"{name!r} is {type(factory).__name__}, not a callable that returns an nn.Module")
        model = factory(**options) if num_classes is None else factory(num_classes=num_classes, **options)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{name}() returned {type(model).__name__}, not an nn.Module")
        return model
    entry = MODELS.get(name)
    with gc_paused():  # resnet1202 on meta: 0.80 -> 0.63 s (benchmarks/bench_zoo.py)
        return entry.builder(num_classes=entry.card.num_classes if num_classes is None else num_classes, **options)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a shell-style pattern such as ``"resnet*"``."""
    return MODELS.names(pattern)


def model_card(name: str) -> ModelCard:
    """The card of a zoo model: paper, default input size, reference counts and their source."""
    return MODELS.get(name).card
