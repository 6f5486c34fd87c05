"""Post-activation residual units -> pre-activation units (He et al. 2016, "Identity Mappings in Deep Residual
Networks", arXiv:1603.05027, Fig. 4e and Sec. 4).

Every ``BasicBlock`` / ``Bottleneck`` becomes a ``PreActBasicBlock`` / ``PreActBottleneck`` with the same widths,
stride and shortcut option: BN-ReLU moves in front of each convolution and nothing follows the addition, so the
shortcut path is a clean identity. The convolution weights are carried over (same shapes); the BN layers are
new. At network level, as in the paper's nets: the convolution right before the first unit loses its BN-ReLU
(the unit's own pre-activation follows it), and a final BN-ReLU is added after the last unit (its sum is not
normalised otherwise), as stage ``norm`` of a ``Network``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.blocks.residual import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    norm_act,
)
from cnnlab.design._graph import clone_model, describe, like, param_count
from cnnlab.design.report import Replacement, TransformReport, build_report, resolve_input_size
from cnnlab.models.network import Network


def to_preactivation(
    resnet: nn.Module,
    *,
    input_size: tuple[int, int, int] | None = None,
) -> tuple[nn.Module, TransformReport]:
    """Rewrite every post-activation residual unit as a pre-activation unit (see the module docstring).

    A network without post-activation units (a plain net, or one already pre-activated) is returned unchanged
    with an empty report. The input model is never modified.
    """
    size = resolve_input_size(resnet, input_size)
    new_model = clone_model(resnet)
    post = [(name, m) for name, m in new_model.named_modules() if type(m) in (BasicBlock, Bottleneck)]
    # pre-activation is about the shortcut path; a plain unit has none (to_residual gives it one first)
    units = [(name, m) for name, m in post if m.shortcut is not None]
    notes: list[str] = []
    if len(units) < len(post):
        notes.append(f"{len(post) - len(units)} unit(s) without a shortcut left as they are; "
                     f"apply to_residual first")
    if not units:
        return new_model, build_report(
            "to_preactivation", {}, size, resnet, new_model, (),
            ["no post-activation residual unit (BasicBlock / Bottleneck with a shortcut) found; model unchanged",
             *notes])
    replaced: list[Replacement] = []
    for name, unit in units:
        new = _preact_unit(unit)
        _set(new_model, name, new)
        replaced.append(Replacement(name, _describe_unit(unit), _describe_unit(new), param_count(unit),
                                    param_count(new)))
    if isinstance(new_model, Network):
        replaced.extend(_network_ends(new_model, notes))
    else:
        notes.append("not a cnnlab Network: the stem's BN-ReLU and the final BN-ReLU were left as they are")
    return new_model, build_report("to_preactivation", {}, size, resnet, new_model, replaced, notes)


def _describe_unit(unit: nn.Module) -> str:
    shortcut = unit.shortcut
    kind = "none" if shortcut is None else (
        "identity" if isinstance(shortcut, nn.Identity) else
        "A" if isinstance(shortcut, ZeroPadShortcut) else "projection")
    return f"{describe(unit)} shortcut={kind}"


def _set(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, new)


def _shortcut_option(unit: nn.Module, same_shape: bool) -> str | bool:
    shortcut = unit.shortcut
    if shortcut is None:
        return False
    if isinstance(shortcut, ConvNormAct):
        return "C" if same_shape else "B"
    return "A"  # identity (A and B agree when the shape is kept) or zero padding


def _preact_unit(unit: nn.Module) -> nn.Module:
    convs = [unit.conv1.conv, unit.conv2.conv] + ([unit.conv3.conv] if isinstance(unit, Bottleneck) else [])
    in_channels, out_channels = convs[0].in_channels, convs[-1].out_channels
    stride = 1
    for conv in convs:
        stride *= conv.stride[0]
    option = _shortcut_option(unit, in_channels == out_channels and stride == 1)
    act = unit._modules.get("act")
    act_cls = type(act) if act is not None and not isinstance(act, nn.Identity) else None
    if isinstance(unit, Bottleneck):
        mid = convs[0].out_channels
        new = PreActBottleneck(in_channels, out_channels, stride, shortcut=option, mid_channels=mid,
                               groups=convs[1].groups, stride_in_1x1=convs[0].stride[0] > 1, act=act_cls)
    else:
        new = PreActBasicBlock(in_channels, out_channels, stride, shortcut=option, act=act_cls)
    new_convs = [new.conv1.conv, new.conv2.conv] + ([new.conv3.conv] if isinstance(new, PreActBottleneck) else [])
    new = like(new, convs[0].weight)
    if not convs[0].weight.is_meta:
        with torch.no_grad():
            for old, fresh in zip(convs, new_convs):
                fresh.weight.copy_(old.weight)  # same shapes: the learned filters carry over
    return new


def _network_ends(net: Network, notes: list[str]) -> list[Replacement]:
    """Drop the stem's BN-ReLU before the first unit; add stage ``norm`` (BN-ReLU) after the last one."""
    preact_types = (PreActBasicBlock, PreActBottleneck)
    stages_with_units = [s for s in net.stage_names
                         if any(isinstance(m, preact_types) for m in getattr(net, s).modules())]
    replaced = []
    first = net.stage_names.index(stages_with_units[0])
    if first > 0:
        stem_name = net.stage_names[first - 1]
        stem = getattr(net, stem_name)
        if isinstance(stem, nn.Sequential) and ("bn" in stem._modules or "act" in stem._modules):
            before, params = describe(stem), param_count(stem)
            for key in ("bn", "act"):
                if key in stem._modules:
                    del stem._modules[key]
            replaced.append(Replacement(stem_name, before, f"{describe(stem)}: BN-ReLU left to "
                                        f"{stages_with_units[0]}'s first unit", params, param_count(stem)))
    last = stages_with_units[-1]
    index = net.stage_names.index(last) + 1
    if index < len(net.stage_names) and isinstance(getattr(net, net.stage_names[index]), nn.Sequential) and (
            "bn" in getattr(net, net.stage_names[index])._modules):
        notes.append(f"stage {net.stage_names[index]!r} after the last unit already normalises; no norm added")
        return replaced
    if "norm" in net._modules:
        notes.append("a module named 'norm' exists; the final BN-ReLU was not added")
        return replaced
    channels = [m for m in getattr(net, last).modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    reference = next(net.parameters())
    norm = like(norm_act(channels), reference)
    children = []
    for key, module in net._modules.items():
        children.append((key, module))
        if key == last:
            children.append(("norm", norm))
    net._modules.clear()
    net._modules.update(OrderedDict(children))
    net.stage_names.insert(index, "norm")
    replaced.append(Replacement("norm", "(none)", f"BN-ReLU on {channels} channels after {last}", 0,
                                param_count(norm)))
    return replaced
