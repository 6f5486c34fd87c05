"""Replace a flatten + fully connected head by global average pooling + one classifier (NIN / GoogLeNet).

Lin et al. 2014, "Network in Network", Sec. 3.2: global average pooling instead of fully connected layers,
"no parameter to optimize"; Szegedy et al. 2015 (GoogLeNet), Sec. 5: average pooling before the classifier
(+0.6% top-1) with one linear layer. On VGG-16 this removes fc6 (512 * 7 * 7 * 4096 + 4096 = 102,764,544
parameters, Simonyan & Zisserman 2015 Table 1) and fc7, and the classifier sees 512 features instead of 4096.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.analysis import meta_copy
from cnnlab.design._graph import clone_model, describe, like, param_count
from cnnlab.design.report import Replacement, TransformReport, build_report, resolve_input_size

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_BETWEEN = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout)


def gap_head(
    model: nn.Module,
    *,
    input_size: tuple[int, int, int] | None = None,
) -> tuple[nn.Module, TransformReport]:
    """Turn ``[pool] -> Flatten -> Linear (-> act/dropout -> Linear)*`` into ``GAP -> Flatten -> [dropout] -> fc``.

    The head must be an ``nn.Sequential`` (any subclass) holding an ``nn.Flatten`` followed only by linear
    layers, activations and dropout; its last linear layer (the classifier, e.g. ``head.fc``) keeps its name and
    its outputs and now takes the ``C`` channels of the last feature map. Hidden linear layers are removed;
    the dropout right before the classifier is kept. The flatten's input shape is found by running a meta
    copy at ``input_size`` (default: the zoo card's), so no weights are materialised.
    A network without such a head, or one that already pools to 1x1, is returned unchanged with an empty
    report. The input model is never modified.
    """
    size = resolve_input_size(model, input_size)
    found = _find_flatten_head(model)
    if found is None:
        return clone_model(model), build_report(
            "gap_head", {}, size, model, model, (),
            ["no flatten + fully connected head (an nn.Sequential with nn.Flatten then nn.Linear layers) found; "
             "model unchanged"])
    head_name, flatten_key = found
    if size is None:
        raise ValueError("gap_head needs input_size=(C, H, W) to find the feature map the head flattens "
                         "(the model is not a zoo model with a default input size)")
    shape = _flatten_input_shape(model, f"{head_name}.{flatten_key}" if head_name else flatten_key, size)
    if len(shape) != 4:
        return clone_model(model), build_report(
            "gap_head", {}, size, model, model, (),
            [f"{head_name or 'model'}.{flatten_key} flattens a {len(shape)}-D tensor {tuple(shape)}, not a "
             f"feature map; model unchanged"])
    channels, height, width = shape[1:]
    if height * width == 1:
        return clone_model(model), build_report(
            "gap_head", {}, size, model, model, (),
            [f"the head already sees a 1x1 map ({channels} channels at {height}x{width}): it is a global-pooling "
             f"head already; model unchanged"])

    new_model = clone_model(model)
    head = new_model.get_submodule(head_name) if head_name else new_model
    replaced = _rewrite(head, head_name, flatten_key, channels)
    notes = [f"the classifier now reads the {channels} channels of the last feature map, averaged over all "
             f"positions (any input size now runs)"]
    return new_model, build_report("gap_head", {}, size, model, new_model, replaced, notes)


def _find_flatten_head(model: nn.Module) -> tuple[str, str] | None:
    """(qualified name of the Sequential, key of its Flatten) of the last flatten head in ``model``."""
    found = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        keys = list(module._modules)
        for i, key in enumerate(keys):
            if not isinstance(module._modules[key], nn.Flatten):
                continue
            rest = [module._modules[k] for k in keys[i + 1:]]
            if rest and any(isinstance(m, nn.Linear) for m in rest) and all(
                    isinstance(m, (nn.Linear, *_BETWEEN)) for m in rest) and isinstance(rest[-1], nn.Linear):
                found = (name, key)
    return found


def _flatten_input_shape(model: nn.Module, flatten_name: str, size: tuple[int, int, int]) -> tuple[int, ...]:
    meta = meta_copy(model).eval()
    shapes: list[tuple[int, ...]] = []
    handle = meta.get_submodule(flatten_name).register_forward_hook(
        lambda module, args, output: shapes.append(tuple(args[0].shape)))
    try:
        with torch.no_grad():
            meta(torch.empty(1, *size, device="meta"))
    finally:
        handle.remove()
    if not shapes:
        raise ValueError(f"{flatten_name} never ran in the forward pass at input {size}; gap_head cannot tell "
                         f"what it flattens")
    return shapes[0]


def _rewrite(head: nn.Sequential, head_name: str, flatten_key: str, channels: int) -> list[Replacement]:
    prefix = f"{head_name}." if head_name else ""
    keys = list(head._modules)
    at = keys.index(flatten_key)
    classifier_key = keys[-1]
    classifier: nn.Linear = head._modules[classifier_key]  # type: ignore[assignment]
    replaced: list[Replacement] = []
    new_children: list[tuple[str, nn.Module]] = []
    pool_key = keys[at - 1] if at > 0 and isinstance(head._modules[keys[at - 1]], _POOLS) else None
    for key in keys[:at - 1 if pool_key else at]:
        new_children.append((key, head._modules[key]))
    gap = nn.AdaptiveAvgPool2d(1)
    if pool_key is not None:
        old_pool = head._modules[pool_key]
        replaced.append(Replacement(prefix + pool_key, type(old_pool).__name__ + _pool_size(old_pool),
                                    "AdaptiveAvgPool2d(1)", 0, 0))
        new_children.append((pool_key, gap))
    else:
        replaced.append(Replacement(prefix + "gap", "(none)", "AdaptiveAvgPool2d(1)", 0, 0))
        new_children.append(("gap", gap))
    new_children.append((flatten_key, head._modules[flatten_key]))
    between = keys[at + 1:-1]
    last_dropout = next((k for k in reversed(between) if isinstance(head._modules[k], nn.Dropout)), None)
    for key in between:
        module = head._modules[key]
        if key == last_dropout:
            new_children.append((key, module))
        elif isinstance(module, nn.Linear):
            replaced.append(Replacement(prefix + key, describe(module), "removed", param_count(module), 0))
    fc = like(nn.Linear(channels, classifier.out_features, bias=classifier.bias is not None), classifier.weight)
    replaced.append(Replacement(prefix + classifier_key, describe(classifier), describe(fc),
                                param_count(classifier), param_count(fc)))
    new_children.append((classifier_key, fc))
    # rebuild the Sequential's children in place: the head keeps its class (and methods such as
    # reset_classifier) and every kept child keeps its name
    head._modules.clear()
    head._modules.update(OrderedDict(new_children))
    return replaced


def _pool_size(pool: nn.Module) -> str:
    size = getattr(pool, "output_size", None) or getattr(pool, "kernel_size", None)
    return f"({size})" if size is not None else ""
