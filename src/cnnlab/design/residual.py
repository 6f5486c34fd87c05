"""Add identity shortcuts to a plain network (He et al. 2015, "Deep Residual Learning", Sec. 3.3, Fig. 3).

Two kinds of plain structure are recognised:

- cnnlab residual units built without a shortcut (``BasicBlock`` / ``Bottleneck`` / pre-activation units with
  ``shortcut=False``: the plain-20 .. plain-110 networks of Sec. 4.2) get their shortcut, and nothing else
  changes, so ``to_residual(plain56)`` is ``resnet56`` layer for layer;
- runs of consecutive post-activation ``ConvNormAct`` children of an ``nn.Sequential`` (or of a ``Network``'s
  stages) are paired from the end of each run, each pair becoming a ``BasicBlock``-style unit
  ``act(conv2(conv1(x)) + shortcut(x))`` with the second unit's activation moved after the addition.

The shortcut is the identity when the pair keeps the shape, otherwise option A (subsample + zero channels, no
parameters) or option B (1x1 projection + BN). Shortcuts add no receptive field.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.blocks.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, make_shortcut
from cnnlab.design._graph import clone_model, describe, explicit_padding, like, param_count
from cnnlab.design.report import Replacement, TransformReport, build_report, resolve_input_size
from cnnlab.models.network import Network

RESIDUAL_UNITS = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)


def to_residual(
    plain_model: nn.Module,
    shortcut: str = "A",
    *,
    input_size: tuple[int, int, int] | None = None,
) -> tuple[nn.Module, TransformReport]:
    """Identity shortcuts around every unit without one and every pair of conv units; ``shortcut`` ("A"/"B")
    is used where the shape changes. Returns a new model and its report; the input is never modified.
    """
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' (zero-padded identity, no parameters) or 'B' (1x1 projection "
                         f"where the shape changes), got {shortcut!r}")
    size = resolve_input_size(plain_model, input_size)
    new_model = clone_model(plain_model)
    replaced: list[Replacement] = []
    notes: list[str] = []
    for name, unit in list(new_model.named_modules()):
        if isinstance(unit, RESIDUAL_UNITS) and unit.shortcut is None:
            replaced.append(_add_unit_shortcut(name, unit, shortcut, notes))
    # containers are listed before any pairing renames children (pairs hold ConvNormAct units, never containers)
    containers = [(name, m) for name, m in new_model.named_modules()
                  if (type(m) is nn.Sequential or isinstance(m, Network)) and not _inside_residual_unit(new_model, name)]
    for name, container in containers:
        replaced.extend(_pair_units(name, container, shortcut, notes))
    if not replaced:
        notes.insert(0, "no residual unit without a shortcut and no pair of consecutive conv units "
                        "(ConvNormAct children of a Sequential) found; model unchanged")
    return new_model, build_report("to_residual", {"shortcut": shortcut}, size, plain_model, new_model,
                                   replaced, notes)


def _inside_residual_unit(root: nn.Module, name: str) -> bool:
    parts = name.split(".") if name else []
    return any(isinstance(root.get_submodule(".".join(parts[:i])), RESIDUAL_UNITS) for i in range(1, len(parts)))


def _branch_geometry(unit: nn.Module) -> tuple[int, int, int]:
    """(in channels, out channels, stride) of a residual unit's branch, from its convolutions."""
    convs = [m for m in unit.modules() if isinstance(m, nn.Conv2d)]
    stride = 1
    for conv in convs:
        stride *= conv.stride[0]
    return convs[0].in_channels, convs[-1].out_channels, stride


def _add_unit_shortcut(name: str, unit: nn.Module, option: str, notes: list[str]) -> Replacement:
    in_channels, out_channels, stride = _branch_geometry(unit)
    before, params_before = describe(unit), param_count(unit)
    if option == "A" and out_channels < in_channels:
        notes.append(f"{name}: option A cannot reduce {in_channels} to {out_channels} channels; used B")
        option = "B"
    pre = isinstance(unit, (PreActBasicBlock, PreActBottleneck))
    if pre:
        unit._set_shortcut(option, in_channels, out_channels, stride)
    else:
        unit.shortcut = make_shortcut(option, in_channels, out_channels, stride)
    if unit.shortcut is not None:
        like(unit.shortcut, next(unit.parameters()))
    # the units register ``shortcut`` right after their convolutions; assigning it later appended it at the end,
    # so restore that order: the network then lists its modules exactly as one built with a shortcut
    order = [k for k in unit._modules if k not in ("shortcut", "act")] + ["shortcut"] + (
        ["act"] if "act" in unit._modules else [])
    children = OrderedDict((k, unit._modules[k]) for k in order)
    unit._modules.clear()
    unit._modules.update(children)
    kind = type(unit.shortcut).__name__
    return Replacement(name, f"{type(unit).__name__} without shortcut [{before.split('[', 1)[-1]}",
                       f"{type(unit).__name__} + {kind} shortcut", params_before, param_count(unit))


def _same_padded(unit: ConvNormAct) -> bool:
    conv = unit.conv
    if any(k % 2 == 0 for k in conv.kernel_size):
        return False
    return explicit_padding(conv) == tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))


def _pairable(module: nn.Module) -> bool:
    # square strides only: option A subsamples both axes alike
    return (isinstance(module, ConvNormAct) and not module.preact and module.conv.groups == 1
            and module.conv.stride[0] == module.conv.stride[1] and _same_padded(module))


def _pair_units(name: str, container: nn.Module, option: str, notes: list[str]) -> list[Replacement]:
    """Pair runs of consecutive pairable ConvNormAct children from the end of each run; rebuild the children."""
    keys = list(container.stage_names) if isinstance(container, Network) else list(container._modules)
    aux_after = set(container.aux_heads) if isinstance(container, Network) and container.aux_heads else set()
    runs: list[list[str]] = [[]]
    for key in keys:
        if _pairable(container._modules[key]):
            runs[-1].append(key)
        else:
            runs.append([])
    pairs: dict[str, str] = {}
    for run in runs:
        # from the end: the first unit of a run is often a stem that changes the width (3 -> 16)
        for i in range(len(run) - 1, 0, -2):
            first, second = run[i - 1], run[i]
            if first in aux_after:
                notes.append(f"{name}.{first}: not paired with {second}, an auxiliary head reads its output")
                continue
            pairs[first] = second
    if not pairs:
        return []
    prefix = f"{name}." if name else ""
    replaced = []
    new_children: list[tuple[str, nn.Module]] = []
    seconds = set(pairs.values())
    for key, module in container._modules.items():
        if key in seconds:
            continue
        if key in pairs:
            second = pairs[key]
            unit = _residual_pair(container._modules[key], container._modules[second], option, notes,
                                  f"{prefix}{key}")
            new_key = f"{key}_{second}"
            old_params = param_count(container._modules[key]) + param_count(container._modules[second])
            replaced.append(Replacement(f"{prefix}{key} + {prefix}{second}",
                                        f"{describe(container._modules[key])} -> "
                                        f"{describe(container._modules[second])}",
                                        f"{new_key}: {type(unit).__name__} + {type(unit.shortcut).__name__} shortcut",
                                        old_params, param_count(unit)))
            new_children.append((new_key, unit))
        else:
            new_children.append((key, module))
    container._modules.clear()
    container._modules.update(OrderedDict(new_children))
    if isinstance(container, Network):
        container.stage_names = [k for k, _ in new_children if k not in ("head", "aux_heads")]
    return replaced


def _residual_pair(first: ConvNormAct, second: ConvNormAct, option: str, notes: list[str],
                   where: str) -> BasicBlock:
    in_channels, out_channels = first.conv.in_channels, second.conv.out_channels
    stride = first.conv.stride[0] * second.conv.stride[0]
    if option == "A" and out_channels < in_channels:
        notes.append(f"{where}: option A cannot reduce {in_channels} to {out_channels} channels; used B")
        option = "B"
    act = second._modules.get("act")
    # a BasicBlock with the two original units in place: act(conv2(conv1(x)) + shortcut(x))
    unit = BasicBlock(in_channels, out_channels, stride, shortcut=option)
    unit.conv1 = first
    if act is not None:
        del second.act
    unit.conv2 = second
    unit.act = act if act is not None else nn.Identity()
    if unit.shortcut is not None:
        like(unit.shortcut, first.conv.weight)
    return unit
