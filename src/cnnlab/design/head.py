"""Replace a flatten + fully connected head by global average pooling + one classifier (NIN / GoogLeNet).

Lin et al. 2014, "Network in Network", Sec. 3.2: global average pooling instead of fully connected layers,
"no parameter to optimize"; Szegedy et al. 2015 (GoogLeNet), Sec. 5: average pooling before the classifier
(+0.6% top-1) with one linear layer. On VGG-16 this removes fc6 (512 * 7 * 7 * 4096 + 4096 = 102,764,544
parameters, Simonyan & Zisserman 2015 Table 1) and fc7, and the classifier sees 512 features instead of 4096.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from cnnlab.analysis import analyze
from cnnlab.design.report import resolve_input_size
from cnnlab.design.rewrite import RewriteRecord, rewrite

_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d)
_BETWEEN = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Dropout)


def gap_head(model: nn.Module, *,
             input_size: tuple[int, int, int] | None = None) -> tuple[nn.Module, RewriteRecord]:
    """Turn ``[pool] -> Flatten -> Linear (-> act/dropout -> Linear)*`` into ``GAP -> Flatten -> [dropout] -> fc``.

    The head must be an ``nn.Sequential`` (any subclass) holding an ``nn.Flatten`` followed only by linear
    layers, activations and dropout; its last linear layer (the classifier, e.g. ``head.fc``) keeps its name and
    its outputs and now takes the ``C`` channels of the last feature map. Hidden linear layers are removed;
    the dropout right before the classifier is kept. The flatten's input shape is found by analysing the model
    (on the meta device) at ``input_size`` (default: the zoo card's), so no weights are materialised.
    A network without such a head, or one that already pools to 1x1, is returned unchanged (copied) with a
    note. The input model is never modified.
    """
    size = resolve_input_size(model, input_size)
    found = _find_flatten_head(model)
    if found is None:
        return _unchanged(model, "no flatten + fully connected head (an nn.Sequential with nn.Flatten then "
                                 "nn.Linear layers) found; model unchanged")
    head_name, flatten_key = found
    if size is None:
        raise ValueError("gap_head needs input_size=(C, H, W) to find the feature map the head flattens "
                         "(the model is not a zoo model with a default input size)")
    shape = _flatten_input_shape(model, f"{head_name}.{flatten_key}" if head_name else flatten_key, size)
    if len(shape) != 4:
        return _unchanged(model, f"{head_name or 'model'}.{flatten_key} flattens a {len(shape)}-D tensor "
                                 f"{tuple(shape)}, not a feature map; model unchanged")
    channels, height, width = shape[1:]
    if height * width == 1:
        return _unchanged(model, f"the head already sees a 1x1 map ({channels} channels at {height}x{width}): it "
                                 f"is a global-pooling head already; model unchanged")
    new_model, record = rewrite(model, lambda name, m: name == head_name,
                                lambda head: _gap_head(head, flatten_key, channels), transform="gap_head")
    note = (f"the classifier now reads the {channels} channels of the last feature map, averaged over all "
            f"positions (any input size now runs)")
    return new_model, RewriteRecord("gap_head", {}, record.replaced, (note,))


def _unchanged(model: nn.Module, note: str) -> tuple[nn.Module, RewriteRecord]:
    return copy.deepcopy(model), RewriteRecord("gap_head", {}, (), (note,))


def _find_flatten_head(model: nn.Module) -> tuple[str, str] | None:
    """(qualified name of the Sequential, key of its Flatten) of the last flatten head in ``model``."""
    found = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for i, (key, child) in enumerate(children):
            rest = [m for _, m in children[i + 1:]]
            if isinstance(child, nn.Flatten) and rest and isinstance(rest[-1], nn.Linear) and all(
                    isinstance(m, (nn.Linear, *_BETWEEN)) for m in rest):
                found = (name, key)
    return found


def _flatten_input_shape(model: nn.Module, flatten_name: str, size: tuple[int, int, int]) -> tuple[int, ...]:
    rows = [r for r in analyze(model, size, training=False).layers if r.name == flatten_name]
    if not rows or rows[0].input_shape is None:
        raise ValueError(f"{flatten_name} never ran in the forward pass at input {size}; gap_head cannot tell "
                         f"what it flattens")
    return tuple(rows[0].input_shape)


def _gap_head(head: nn.Sequential, flatten_key: str, channels: int) -> nn.Sequential:
    """The head with ``GAP -> Flatten -> [dropout] -> fc``, rebuilt in place on the copy: it keeps its class (and
    methods such as ``reset_classifier``) and every kept child keeps its name."""
    children = OrderedDict(head.named_children())
    keys = list(children)
    at = keys.index(flatten_key)
    pool_key = keys[at - 1] if at > 0 and isinstance(children[keys[at - 1]], _POOLS) else None
    kept = [(key, children[key]) for key in keys[:at - 1 if pool_key else at]]
    kept.append((pool_key or "gap", nn.AdaptiveAvgPool2d(1)))
    kept.append((flatten_key, children[flatten_key]))
    between = keys[at + 1:-1]
    last_dropout = next((k for k in reversed(between) if isinstance(children[k], nn.Dropout)), None)
    if last_dropout is not None:
        kept.append((last_dropout, children[last_dropout]))
    classifier = children[keys[-1]]
    kept.append((keys[-1], nn.Linear(channels, classifier.out_features, bias=classifier.bias is not None)))
    for key in keys:
        delattr(head, key)
    for key, module in kept:
        head.add_module(key, module)
    return head
