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

import copy
from collections import OrderedDict

from torch import nn

from cnnlab.blocks import ConvNormAct
from cnnlab.blocks.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, norm_act
from cnnlab.design.residual import unit_args
from cnnlab.design.rewrite import Replacement, RewriteRecord, Skip, param_count, rewrite_in_place
from cnnlab.models.network import Network


def to_preactivation(resnet: nn.Module) -> tuple[nn.Module, RewriteRecord]:
    """Rewrite every post-activation residual unit as a pre-activation unit (see the module docstring).

    A network without post-activation units (a plain net, or one already pre-activated) is returned unchanged
    (copied) with a note. The input model is never modified.
    """
    post = [name for name, m in resnet.named_modules() if type(m) in (BasicBlock, Bottleneck)]
    # pre-activation is about the shortcut path; a plain unit has none (to_residual gives it one first)
    units = {name for name in post if resnet.get_submodule(name).shortcut is not None}
    notes: list[str] = []
    if len(units) < len(post):
        notes.append(f"{len(post) - len(units)} unit(s) without a shortcut left as they are; apply to_residual first")
    model = copy.deepcopy(resnet)
    if not units:
        notes.insert(0, "no post-activation residual unit (BasicBlock / Bottleneck with a shortcut) found; "
                        "model unchanged")
        return model, RewriteRecord("to_preactivation", {}, (), tuple(notes))
    model, replaced, _ = rewrite_in_place(model, lambda name, m: name in units, _preact_unit)
    if isinstance(model, Network):
        stages = [s for s in model.stage_names if any(u == s or u.startswith(f"{s}.") for u in units)]
        first = model.stage_names.index(stages[0])
        stem = model.stage_names[first - 1] if first > 0 else None
        # the stem's BN-ReLU is left to the first unit's own pre-activation
        model, stem_rows, stem_notes = rewrite_in_place(model, lambda name, m: name == stem, _without_norm_act)
        replaced += stem_rows + _final_norm(model, stages[-1], notes)
        notes += stem_notes
    else:
        notes.append("not a cnnlab Network: the stem's BN-ReLU and the final BN-ReLU were left as they are")
    return model, RewriteRecord("to_preactivation", {}, tuple(replaced), tuple(notes))


def _preact_unit(unit: nn.Module) -> nn.Module:
    """The pre-activation twin of a post-activation unit, built by its block class; the convolutions (same
    shapes: the learned filters) carry over, the BN layers are new."""
    args = unit_args(unit)
    same_shape = args["in_channels"] == args["out_channels"] and args["stride"] == 1
    # identity (A and B agree when the shape is kept) or zero padding: "A"; a projection: "B", or "C" on every unit
    option = ("C" if same_shape else "B") if isinstance(unit.shortcut, ConvNormAct) else "A"
    act = None if isinstance(unit.act, nn.Identity) else type(unit.act)
    new = (PreActBottleneck if isinstance(unit, Bottleneck) else PreActBasicBlock)(**args, shortcut=option, act=act)
    for name in new.conv_names:
        getattr(new, name).conv = getattr(unit, name).conv
    return new


def _without_norm_act(stem: nn.Module) -> nn.Module:
    if isinstance(stem, ConvNormAct):
        if stem.pooling is not None or stem.preact or (stem.normalization is None and stem.activation is None):
            raise Skip("no conv-BN-ReLU stem whose BN-ReLU the first unit's pre-activation replaces")
        conv = stem.conv
        new = ConvNormAct(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, bias=conv.bias is not None, norm=False, act=None)
        new.conv = conv
        return new
    kept = [(key, m) for key, m in stem.named_children() if key not in ("bn", "act")]
    if not isinstance(stem, nn.Sequential) or len(kept) == len(list(stem.children())):
        raise Skip("no BN-ReLU (children 'bn', 'act' of a Sequential) to leave to the first unit")
    return nn.Sequential(OrderedDict(kept))


def _final_norm(net: Network, last: str, notes: list[str]) -> list[Replacement]:
    """Add stage ``norm`` (BN-ReLU) after the last stage with units, unless something there normalises."""
    index = net.stage_names.index(last) + 1
    after = getattr(net, net.stage_names[index]) if index < len(net.stage_names) else None
    if isinstance(after, nn.Sequential) and any(isinstance(m, nn.BatchNorm2d) for m in after.children()):
        notes.append(f"stage {net.stage_names[index]!r} after the last unit already normalises; no norm added")
        return []
    if "norm" in dict(net.named_children()):
        notes.append("a module named 'norm' exists; the final BN-ReLU was not added")
        return []
    channels = [m for m in getattr(net, last).modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    reference = next(net.parameters())
    norm = norm_act(channels).to(device=reference.device, dtype=reference.dtype)
    children = list(net.named_children())
    for key, _ in children:
        delattr(net, key)
    for key, module in children:
        net.add_module(key, module)
        if key == last:
            net.add_module("norm", norm)
    net.stage_names.insert(index, "norm")
    return [Replacement("norm", "(none)", f"BN-ReLU on {channels} channels after {last}", 0, param_count(norm))]
