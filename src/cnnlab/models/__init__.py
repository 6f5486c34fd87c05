"""The model zoo: every classic network, declared as data and built from cnnlab.blocks.

Importing this package registers every family module listed in ``_FAMILIES``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from pathlib import Path

from torch import nn

from cnnlab._gc import gc_paused
from cnnlab.models.convert import from_timm, from_torchvision
from cnnlab.models.network import ModelOutput, Network, aux_loss
from cnnlab.models.spec import NetworkSpec
from cnnlab.registry import MODELS, ModelCard, UnknownModelError

__all__ = ["ModelOutput", "Network", "UntrustedCodeError", "aux_loss", "check_trusted", "create_model",
           "import_object", "is_code_reference", "list_models", "model_card", "model_spec", "UnknownModelError",
           "from_timm", "from_torchvision"]

# every module in this package that is not infrastructure is a family file that registers models
_INFRASTRUCTURE = {"network", "spec", "build", "convert"}
for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _INFRASTRUCTURE and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")


def import_object(spec: str) -> object:
    """The object that ``package.module:attr`` (or ``:attr.sub``) names; a one-line ValueError if it cannot be had.

    As ``python -m`` would, a module that is not importable is looked for in the current directory
    (``mynet:small_cnn`` finds ``./mynet.py``), and the module may be a file path (``nets/mynet.py:small_cnn``).
    """
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r}: give package.module:callable, such as mypkg.nets:small_cnn")
    try:
        if module_name.endswith(".py") or "/" in module_name or os.sep in module_name:
            target: object = _import_file(Path(module_name))
        else:
            target = _import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} from {spec!r} ({exc}); is it installed, on PYTHONPATH or "
                         f"in the current directory?") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}; give package.module:callable")
        target = getattr(target, part)
    return target


def _import_module(name: str) -> object:
    """``importlib.import_module``, then the current directory as ``python -m`` puts it first on ``sys.path``.

    The console script ``cnnlab`` does not have the current directory on ``sys.path``; it is added for this import
    only, and only when the module cannot be found elsewhere, so an installed package is never shadowed.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.split(".")[0]
        cwd = Path.cwd()
        here = (cwd / f"{top}.py").is_file() or (cwd / top / "__init__.py").is_file()
        if exc.name != top or not here:
            raise
    sys.path.insert(0, str(cwd))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(cwd))


def _import_file(path: Path) -> object:
    """Import a ``.py`` file by path (``nets/mynet.py``) as the module named after it (``mynet``)."""
    if not path.is_file():
        raise ImportError(f"no file {str(path)!r}")
    path = path.resolve()
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None:
        if getattr(loaded, "__file__", None) and Path(loaded.__file__).resolve() == path:
            return loaded
        name = f"{name}_{abs(hash(str(path))):x}"  # never shadow another module of the same name (json.py)
        if name in sys.modules:
            return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by its name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


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


def create_model(name: str, num_classes: int | None = None, *, pretrained: bool = False, **options) -> nn.Module:
    """Build a zoo model by name; ``num_classes`` defaults to the card's (1000 for ImageNet, 10 for CIFAR).

    ``name`` may also be ``package.module:callable`` (your own network): it is imported and called with
    ``num_classes`` (when given) and ``options``, and must return an ``nn.Module``.
    For zoo models, ``in_chans`` (timm's name) is accepted for ``in_channels``, and ``pretrained=True`` raises a
    one-line ValueError: cnnlab ships no weights, and the message says how to load torchvision's or timm's
    (``from_torchvision`` / ``from_timm``). Your own callable receives both as given.
    """
    if ":" in name:
        if pretrained:
            options["pretrained"] = pretrained
        factory = import_object(name)
        if not callable(factory):
            raise TypeError(f"{name!r} is {type(factory).__name__}, not a callable that returns an nn.Module")
        model = factory(**options) if num_classes is None else factory(num_classes=num_classes, **options)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{name}() returned {type(model).__name__}, not an nn.Module")
        return model
    entry = MODELS.get(name)
    if pretrained:
        raise ValueError(_no_weights(name))
    if "in_chans" in options:
        in_chans = options.pop("in_chans")
        if options.setdefault("in_channels", in_chans) != in_chans:
            raise ValueError(f"in_chans={in_chans} and in_channels={options['in_channels']} disagree; give one "
                             f"(in_chans is timm's name for in_channels)")
    with gc_paused():  # resnet1202 on meta: 0.80 -> 0.63 s (benchmarks/bench_zoo.py)
        return entry.builder(num_classes=entry.card.num_classes if num_classes is None else num_classes, **options)


def _no_weights(name: str) -> str:
    """One line: cnnlab has no weights for ``name``, and where a converter exists, how to load the reference's."""
    found = {source: conv.reference_name or name for source, conv in MODELS.get(name).card.converters.items()}
    if "torchvision" in found:
        extra = {"googlenet": ", transform_input=True, aux_logits=False",
                 "inception_v3": ", transform_input=True"}.get(name, "")
        how = (f"load torchvision's: cnnlab.models.from_torchvision({name!r}, torchvision.models."
               f"{found['torchvision']}(weights='DEFAULT').state_dict(){extra})")
    elif "timm" in found:
        how = (f"load timm's: cnnlab.models.from_timm({name!r}, timm.create_model({found['timm']!r}, "
               f"pretrained=True).state_dict())")
    else:
        how = ("torchvision and timm have no weights for this network either: train it (cnnlab train) or load your "
               "own with model.load_state_dict")
    return f"{name}: cnnlab ships no pretrained weights; {how}"


def model_spec(name: str, num_classes: int | None = None, **options) -> NetworkSpec:
    """The ``NetworkSpec`` that ``create_model(name, num_classes, **options)`` builds (``build(spec)`` gives the
    same network); a ValueError for a model not declared as a spec."""
    entry = MODELS.get(name)
    if entry.spec is None:
        have = [e.name for e in MODELS if e.spec is not None]
        raise ValueError(f"{name} is built by code, not declared as a spec; models with a spec: {', '.join(have)}")
    return entry.spec(num_classes=entry.card.num_classes if num_classes is None else num_classes, **options)


def list_models(pattern: str | None = None) -> list[str]:
    """Registered model names, optionally filtered by a shell-style pattern such as ``"resnet*"``."""
    return MODELS.names(pattern)


def model_card(name: str) -> ModelCard:
    """The card of a zoo model: paper, default input size, reference counts and their source."""
    return MODELS.get(name).card
