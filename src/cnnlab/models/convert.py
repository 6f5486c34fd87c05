"""Load torchvision / timm state dicts into the matching cnnlab models.

Each family file declares on its model cards, as data, how the reference implementation names its tensors
(``ModelCard.converters``: a ``Converter`` per source library, an ordered list of ``(regex, replacement)``
rules applied to every key, first match wins, optionally followed by a function for what renaming cannot
express). This module applies them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import torch
from torch import nn

from cnnlab.registry import MODELS, SOURCES, Converter  # noqa: F401  (SOURCES: public here before the cards)

log = logging.getLogger(__name__)

StateDict = Mapping[str, torch.Tensor]
Rules = tuple[tuple[str, str], ...]


def register_converter(source: str, names: str | Iterable[str], rules: Iterable[tuple[str, str]] = (),
                       fn: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
                       options: Mapping[str, object] | None = None, reference_name: str = "") -> None:
    """Add to the cards of the registered models ``names`` how ``source`` ("torchvision" or "timm") names their
    tensors (the zoo declares this on its cards: ``ModelCard(converters={source: Converter(...)})``)."""
    for name in [names] if isinstance(names, str) else list(names):
        MODELS.add_converter(name, source, Converter(tuple(rules), fn, dict(options or {}), reference_name))


def converters(source: str | None = None) -> dict[tuple[str, str], Converter]:
    """Every card's converters, optionally for one source: ``{(source, cnnlab_name): Converter}``, with
    ``reference_name`` filled in (cnnlab's name where the source uses the same)."""
    return {(s, entry.name): replace(c, reference_name=c.reference_name or entry.name)
            for entry in MODELS for s, c in entry.card.converters.items() if source in (None, s)}


def _converter(source: str, name: str) -> Converter:
    conv = MODELS.get(name).card.converters.get(source) if name in MODELS else None
    if conv is None:
        have = sorted(n for _, n in converters(source))
        raise ValueError(f"no {source} converter for {name!r}; models with one: {', '.join(have)}")
    return conv


def rename_keys(state_dict: StateDict, rules: Rules) -> dict[str, torch.Tensor]:
    """Apply the first matching ``(regex, replacement)`` rule to every key; unmatched keys are kept."""
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            if pattern.search(key):
                key = pattern.sub(repl, key)
                break
        if key in out:
            raise ValueError(f"two source tensors map to {key!r}: the converter's rules are ambiguous")
        out[key] = value
    return out


def convert_state_dict(source: str, name: str, state_dict: StateDict) -> dict[str, torch.Tensor]:
    """Rename a ``source`` state dict to the keys of cnnlab's ``name`` model."""
    conv = _converter(source, name)
    out = rename_keys(state_dict, conv.rules)
    return conv.fn(out) if conv.fn is not None else out


# torchvision builds these with transform_input=True when it loads its pretrained weights: the network
# first re-scales ImageNet-normalised images to the [-1, 1] range the original (TF-slim) weights expect
TRANSFORM_INPUT_MODELS = ("googlenet", "inception_v3")
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchvisionInputTransform(nn.Module):
    """torchvision's ``transform_input``: ``x * std / 0.5 + (mean - 0.5) / 0.5`` per channel (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = [x[:, i:i + 1] * (s / 0.5) + (m - 0.5) / 0.5
                    for i, (m, s) in enumerate(zip(_IMAGENET_MEAN, _IMAGENET_STD))]
        return torch.cat(channels, 1)


def _strip_ddp_prefix(state_dict: StateDict) -> StateDict:
    """A state dict saved from DistributedDataParallel has every key under ``module.``; the model's has none."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        log.info("state dict keys start with 'module.' (saved from DistributedDataParallel): prefix stripped")
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return state_dict


def load_reference(source: str, name: str, state_dict: StateDict, *, transform_input: bool = False,
                   **options) -> nn.Module:
    """Build cnnlab's ``name`` with the reference layout and load a ``source`` state dict into it, strictly.

    ``transform_input=True`` builds torchvision's input re-scaling in front of the network (googlenet and
    inception_v3 only), so that ImageNet-normalised images give the reference's predictions.
    """
    from cnnlab.models import create_model

    if transform_input and name not in TRANSFORM_INPUT_MODELS:
        raise ValueError(f"transform_input applies to {', '.join(TRANSFORM_INPUT_MODELS)} only, not {name!r}")
    converted = convert_state_dict(source, name, _strip_ddp_prefix(state_dict))
    kwargs = {**_converter(source, name).options, **options}
    if "num_classes" not in kwargs and "head.fc.weight" in converted:
        kwargs["num_classes"] = converted["head.fc.weight"].shape[0]
    model = create_model(name, **kwargs)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing and not unexpected and all(k.startswith("aux_heads.") for k in missing):
        raise ValueError(f"the {source} state dict has no auxiliary-classifier weights (pretrained weights drop "
                         f"them): pass aux_logits=False")
    if missing or unexpected:
        raise ValueError(
            f"{source} state dict does not match cnnlab {name!r} with options {kwargs}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; "
            f"check that the reference model was built with the same options (e.g. aux_logits)")
    if transform_input:
        model.prepend_stage("transform_input", TorchvisionInputTransform())
    return model


def from_torchvision(name: str, state_dict: StateDict, *, transform_input: bool | None = None,
                     **options) -> nn.Module:
    """A cnnlab model holding the weights of a torchvision state dict (e.g. ``resnet50(weights=...).state_dict()``).

    For googlenet and inception_v3 say what the reference did with its input: ``transform_input=True`` for
    torchvision's pretrained weights (it re-scales normalised images first; cnnlab then does the same),
    ``False`` for a reference built without it. A state dict from DistributedDataParallel loads as well.
    """
    if name in TRANSFORM_INPUT_MODELS and transform_input is None:
        raise ValueError(f"torchvision's pretrained {name} re-scales its input (transform_input=True): pass "
                         f"transform_input=True for its weights, or transform_input=False if your reference was "
                         f"built without it; otherwise normalised images give wrong predictions")
    return load_reference("torchvision", name, state_dict, transform_input=bool(transform_input), **options)


def from_timm(name: str, state_dict: StateDict, **options) -> nn.Module:
    """A cnnlab model holding the weights of a timm state dict (where timm names tensors as torchvision does,
    e.g. resnet50 and inception_v3, the error says to use ``from_torchvision``)."""
    found = MODELS.get(name).card.converters if name in MODELS else {}
    if "timm" not in found and "torchvision" in found:
        extra = ", transform_input=False" if name in TRANSFORM_INPUT_MODELS else ""
        raise ValueError(f"timm's {name} names its tensors as torchvision's does: load it with "
                         f"cnnlab.models.from_torchvision({name!r}, state_dict{extra}) (timm normalises images "
                         f"outside the model, with its pretrained_cfg mean and std)")
    return load_reference("timm", name, state_dict, **options)
