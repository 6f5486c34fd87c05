"""Save a transformed model safely and rebuild it: weights as a state dict + a JSON recipe of the transforms.

The whole module is never pickled: loading a pickled ``nn.Module`` runs arbitrary code from the file. Instead
the weights go to safetensors (or a plain ``.pt`` state dict, loaded with ``torch.load(weights_only=True)``)
and ``<name>.json`` records the zoo model and the transforms applied to it, so that ``load_transformed``
rebuilds the architecture from cnnlab's own code and then loads the weights into it, strictly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab._io import atomic_path, atomic_write
from cnnlab.design.bottleneck import add_bottleneck
from cnnlab.design.factorize import factorize
from cnnlab.design.head import gap_head
from cnnlab.design.preact import to_preactivation
from cnnlab.design.residual import to_residual
from cnnlab.design.rewrite import RewriteRecord

RECIPE_FORMAT = "cnnlab-transform-recipe/1"
TRANSFORMS: dict[str, Callable[..., tuple[nn.Module, RewriteRecord]]] = {
    "to_residual": to_residual,
    "to_preactivation": to_preactivation,
    "factorize": factorize,
    "add_bottleneck": add_bottleneck,
    "gap_head": gap_head,
}
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth")


def apply_transforms(model: nn.Module, steps: Sequence[Mapping[str, Any]],
                     input_size: tuple[int, int, int] | None = None) -> tuple[nn.Module, list[RewriteRecord]]:
    """Apply ``[{"name": "factorize", "args": {...}}, ...]`` in order; returns the last model and every record.

    Nothing is measured (``compare`` does that); ``input_size`` is only for ``gap_head``, which must find the
    feature map its head flattens.
    """
    records = []
    for step in steps:
        name = step.get("name")
        if name not in TRANSFORMS:
            raise ValueError(f"unknown transform {name!r} in recipe; known: {sorted(TRANSFORMS)}")
        args = dict(step.get("args", {}))
        if name == "gap_head":
            args.setdefault("input_size", input_size)
        model, record = TRANSFORMS[name](model, **args)
        records.append(record)
    return model, records


def recipe_path(weights_path: str | os.PathLike) -> Path:
    """The JSON recipe that sits next to a weights file: ``model.safetensors`` -> ``model.json``."""
    return Path(weights_path).with_suffix(".json")


def save_transformed(model: nn.Module, weights_path: str | os.PathLike, recipe: Mapping[str, Any]) -> Path:
    """Write the state dict (safetensors, or a ``.pt`` tensor dict) and the recipe JSON; returns the JSON path.

    ``recipe`` holds ``model`` (a zoo name or ``package.module:callable``), ``model_options`` (``create_model``
    keywords), ``transforms`` (as ``apply_transforms`` takes them) and ``input_size``. Both files are written
    atomically (temp file + rename).
    """
    path = Path(weights_path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ValueError(f"output file {str(path)!r} must end in one of {WEIGHT_SUFFIXES} (weights as safetensors "
                         f"or a plain state dict; the whole module is never pickled)")
    if not path.parent.exists():
        raise FileNotFoundError(f"output directory {str(path.parent)!r} does not exist; create it first")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save

        # copies: safetensors refuses tensors that share storage (tied weights), as train.export does
        atomic_write(path, save({k: v.clone() for k, v in state.items()}))
    else:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    meta = {"format": RECIPE_FORMAT, "weights": path.name, **recipe}
    json_path = recipe_path(path)
    atomic_write(json_path, json.dumps(meta, indent=2) + "\n")
    return json_path


def load_transformed(weights_path: str | os.PathLike, *, model: str | None = None,
                     trust_code: bool = False) -> nn.Module:
    """Rebuild a transformed model from its recipe JSON and load its weights (strictly, no pickled code).

    The recipe names the model as ``create_model`` takes it. A ``package.module:callable`` is imported only when
    the caller names it again (``model=``, which must match the recipe) or passes ``trust_code=True``: a recipe
    someone sent you is as safe to load as its safetensors file.
    """
    path = Path(weights_path)
    json_path = recipe_path(path)
    if not path.is_file() or not json_path.is_file():
        raise FileNotFoundError(f"need both {str(path)!r} and its recipe {str(json_path)!r} (written by "
                                f"save_transformed / cnnlab transform -o)")
    recipe = json.loads(json_path.read_text())
    if recipe.get("format") != RECIPE_FORMAT:
        raise ValueError(f"{str(json_path)!r} is not a {RECIPE_FORMAT} recipe (format={recipe.get('format')!r})")
    from cnnlab.models import check_trusted, create_model

    name = recipe.get("model")
    if not isinstance(name, str):
        raise ValueError(f"{str(json_path)!r} names no model (\"model\": {name!r}); it is not a complete recipe")
    if model is not None and model != name:
        raise ValueError(f"{str(json_path)!r} was made from {name!r}, not {model!r}; pass model={name!r}")
    check_trusted(name, f"recipe {str(json_path)!r}", trusted=trust_code or model == name)
    net = create_model(name, **recipe.get("model_options", {}))
    size = recipe.get("input_size")
    net, _ = apply_transforms(net, recipe.get("transforms", []), tuple(size) if size else None)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no code runs
    net.load_state_dict(state, strict=True)
    return net
