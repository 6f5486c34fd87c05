"""Add identity shortcuts to a plain network (He et al. 2015, "Deep Residual Learning", Sec. 3.3, Fig. 3).

Two kinds of plain structure are recognised:

- cnnlab residual units built without a shortcut (``BasicBlock`` / ``Bottleneck`` / pre-activation units with
  ``shortcut=False``: the plain-20 .. plain-110 networks of Sec. 4.2) are rebuilt by their own class with a
  shortcut, their layers carried over, so ``to_residual(plain56)`` is ``resnet56`` layer for layer;
- runs of consecutive post-activation ``ConvNormAct`` children of an ``nn.Sequential`` (or of a ``Network``'s
  stages) are paired from the end of each run, each pair becoming a ``BasicBlock`` holding the two units,
  ``act(conv2(conv1(x)) + shortcut(x))``, with the second unit's activation moved after the addition.

The shortcut is the identity when the pair keeps the shape, otherwise option A (subsample + zero channels, no
parameters) or option B (1x1 projection + BN). Shortcuts add no receptive field.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.blocks.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from cnnlab.design.rewrite import RewriteRecord, padding_of, rewrite_in_place
from cnnlab.models.network import Network

RESIDUAL_UNITS = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)


def to_residual(plain_model: nn.Module, shortcut: str = "A") -> tuple[nn.Module, RewriteRecord]:
    """Identity shortcuts around every unit without one and every pair of conv units; ``shortcut`` ("A"/"B")
    is used where the shape changes. Returns a new model and what was replaced; the input is never modified.
    """
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' (zero-padded identity, no parameters) or 'B' (1x1 projection "
                         f"where the shape changes), got {shortcut!r}")
    notes: list[str] = []
    model = copy.deepcopy(plain_model)
    model, units, skipped = rewrite_in_place(
        model, lambda name, m: isinstance(m, RESIDUAL_UNITS) and m.shortcut is None,
        lambda unit: _with_shortcut(unit, shortcut, notes))
    inside = [name for name, m in model.named_modules() if isinstance(m, RESIDUAL_UNITS)]

    def container(name: str, module: nn.Module) -> bool:
        return (type(module) is nn.Sequential or isinstance(module, Network)) and bool(_pairs(module)) and not any(
            name.startswith(f"{unit}.") for unit in inside)

    model, pairs, more = rewrite_in_place(model, container, lambda c: _paired(c, shortcut, notes))
    replaced = tuple(units + pairs)
    if not replaced:
        notes.insert(0, "no residual unit without a shortcut and no pair of consecutive conv units "
                        "(ConvNormAct children of a Sequential) found; model unchanged")
    return model, RewriteRecord("to_residual", {"shortcut": shortcut}, replaced, tuple(notes + skipped + more))


def unit_args(unit: nn.Module) -> dict[str, Any]:
    """The widths and stride of a residual unit (and a bottleneck's mid width, groups and stride position), read
    from its convolutions: the keywords its class, or its pre-activation twin, is built with."""
    convs = [getattr(unit, name).conv for name in ("conv1", "conv2", "conv3") if hasattr(unit, name)]
    stride = 1
    for conv in convs:
        stride *= conv.stride[0]
    args: dict[str, Any] = {"in_channels": convs[0].in_channels, "out_channels": convs[-1].out_channels,
                            "stride": stride}
    if len(convs) == 3:
        args.update(mid_channels=convs[0].out_channels, groups=convs[1].groups,
                    stride_in_1x1=convs[0].stride[0] > 1)
    return args


def _option(option: str, args: dict[str, Any], notes: list[str], where: str) -> str:
    if option == "A" and args["out_channels"] < args["in_channels"]:
        notes.append(f"{where}: option A cannot reduce {args['in_channels']} to {args['out_channels']} channels; "
                     f"used B")
        return "B"
    return option


def _with_shortcut(unit: nn.Module, option: str, notes: list[str]) -> nn.Module:
    """The unit rebuilt by its own class with a shortcut; its layers (and their weights) carried over."""
    args = unit_args(unit)
    where = f"a {type(unit).__name__} {args['in_channels']}->{args['out_channels']}"
    new = type(unit)(**args, shortcut=_option(option, args, notes, where))
    for key, child in unit.named_children():
        setattr(new, key, child)  # an existing key: the class's own child order is kept
    return new


def _pairable(module: nn.Module) -> bool:
    if not isinstance(module, ConvNormAct) or module.preact or module.pooling is not None:
        return False
    conv = module.conv
    # square strides only: option A subsamples both axes alike; "same" padding keeps the shortcut's grid
    return conv.groups == 1 and conv.stride[0] == conv.stride[1] and padding_of(conv)[1]


def _pairs(container: nn.Module, notes: list[str] | None = None) -> dict[str, str]:
    """{first: second} for runs of consecutive pairable children, paired from the end of each run (the first
    unit of a run is often a stem that changes the width, 3 -> 16); never across an auxiliary head's input."""
    aux = set(container.aux_heads) if isinstance(container, Network) and container.aux_heads else set()
    keys = list(container.stage_names) if isinstance(container, Network) else [k for k, _ in
                                                                                container.named_children()]
    runs: list[list[str]] = [[]]
    for key in keys:
        if _pairable(getattr(container, key)):
            runs[-1].append(key)
        else:
            runs.append([])
    pairs = {}
    for run in runs:
        for first, second in ((run[i - 1], run[i]) for i in range(len(run) - 1, 0, -2)):
            if first not in aux:
                pairs[first] = second
            elif notes is not None:
                notes.append(f"{first}: not paired with {second}, an auxiliary head reads its output")
    return pairs


def _paired(container: nn.Module, option: str, notes: list[str]) -> nn.Module:
    """Rebuild the container's children in place (on the copy) with each pair as one ``BasicBlock``; containers
    inside it are paired too."""
    pairs = _pairs(container, notes)
    children = list(container.named_children())
    for key, _ in children:
        delattr(container, key)
    for key, module in children:
        if key in pairs:
            second = pairs[key]
            container.add_module(f"{key}_{second}", _residual_pair(module, dict(children)[second], option, notes,
                                                                   key))
        elif key not in pairs.values():
            is_container = type(module) is nn.Sequential and _pairs(module)
            container.add_module(key, _paired(module, option, notes) if is_container else module)
    if isinstance(container, Network):
        container.stage_names = [k for k, _ in container.named_children() if k not in ("head", "aux_heads")]
    return container


def _residual_pair(first: ConvNormAct, second: ConvNormAct, option: str, notes: list[str],
                   where: str) -> BasicBlock:
    args = {"in_channels": first.conv.in_channels, "out_channels": second.conv.out_channels}
    # a BasicBlock with the two original units in place: act(conv2(conv1(x)) + shortcut(x))
    unit = BasicBlock(**args, stride=first.conv.stride[0] * second.conv.stride[0],
                      shortcut=_option(option, args, notes, where))
    act = second.activation
    if act is not None:
        del second.act  # it moves after the addition
    unit.conv1, unit.conv2 = first, second
    unit.act = act if act is not None else nn.Identity()
    return unit.to(device=first.conv.weight.device, dtype=first.conv.weight.dtype)
