"""The only code that turns a ``NetworkSpec`` into modules, from cnnlab.blocks (whose ``build_layer``,
``build_branch`` and ``build_multi_branch`` make layers, branches and Inception modules; importable here).

Module names follow the spec: stages are the Network's children under their names, a multi-branch module's
branches are ``branch0 .. branchN``, a one-layer branch is that layer bare and a longer one a Sequential
(torchvision's and timm's layout, so their state dicts load by renaming keys only).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial

from torch import nn

from cnnlab.blocks import ClassifierHead, Fire, HighwayConv
from cnnlab.blocks.heads import ConvClassifierHead, FCHead, GoogLeNetAux, InceptionV3Aux
from cnnlab.blocks.multibranch import build_multi_branch
from cnnlab.blocks.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck
from cnnlab.blocks.spec import build_branch, build_layer, conv_kwargs_for
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    AuxSpec,
    BranchSpec,
    ConvDefaults,
    FireSpec,
    HeadSpec,
    HighwayConvSpec,
    MultiBranchSpec,
    NetworkSpec,
    ResidualSpec,
    StageSpec,
    Unit,
    min_input_size,
)


def build(spec: NetworkSpec) -> Network:
    """The network ``spec`` describes, its smallest input sizes computed from the spec."""
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"build takes a NetworkSpec, got {type(spec).__name__}")
    conv_kwargs = conv_kwargs_for(spec.conv)
    stages: list[tuple[str, nn.Module]] = []
    aux_heads: dict[str, nn.Module] = {}
    channels = spec.in_channels
    for stage_spec in spec.stages:
        stages.append((stage_spec.name, build_stage(stage_spec, channels, conv_kwargs)))
        channels = stage_spec.channels(channels)
        for aux in spec.aux:  # built right after its stage, as the family files always did (same init order)
            if aux.after == stage_spec.name:
                aux_heads[aux.after] = _aux(aux, channels, spec.num_classes, spec.conv)
    model = Network(stages, _head(spec.head, channels, spec.num_classes), aux_heads, spec.in_channels,
                    min_input_size(spec), name=spec.name,
                    aux_min_input_size=min_input_size(spec, with_aux=True) if spec.aux else None)
    _INITS[spec.init](model)
    for m in model.modules():
        if isinstance(m, HighwayConv) and not m.gate.bias.is_meta:
            m.reset_gate()  # a model-wide init must not overwrite a highway gate's (negative) bias
        elif isinstance(m, nn.BatchNorm2d) and not spec.train_norm_scale:
            m.weight.requires_grad_(False)  # airbench: the scale stays 1, only the shift learns
    return model


_RESIDUAL_UNITS = {(False, "basic"): BasicBlock, (False, "bottleneck"): Bottleneck,
                   (True, "basic"): PreActBasicBlock, (True, "bottleneck"): PreActBottleneck}


def build_residual(unit: ResidualSpec, in_channels: int) -> nn.Module:
    """A ResNet unit; its convs are the blocks' own (BN, no bias), whatever the network's conv defaults."""
    extra = {"stride_in_1x1": unit.stride_in_1x1} if unit.kind == "bottleneck" else {}
    return _RESIDUAL_UNITS[(unit.preact, unit.kind)](in_channels, unit.out_channels, unit.stride,
                                                     shortcut=unit.shortcut, **extra)


def build_unit(unit: Unit, in_channels: int, conv_kwargs: dict[str, object]) -> nn.Module:
    if isinstance(unit, FireSpec):  # the fire module's own convs: biases, no norm (the paper's Caffe model)
        return Fire(in_channels, unit.squeeze, unit.expand1x1, unit.expand3x3, bypass=unit.bypass)
    if isinstance(unit, HighwayConvSpec):  # its own convs: biases, no norm (Srivastava et al. 2015)
        return HighwayConv(in_channels, unit.kernel, unit.gate_bias)
    if isinstance(unit, BranchSpec):
        return build_branch(unit, in_channels, conv_kwargs)
    if isinstance(unit, MultiBranchSpec):
        return build_multi_branch(unit, in_channels, conv_kwargs)
    if isinstance(unit, ResidualSpec):
        return build_residual(unit, in_channels)
    return build_layer(unit, in_channels, conv_kwargs)


def build_stage(stage: StageSpec, in_channels: int, conv_kwargs: dict[str, object]) -> nn.Module:
    modules = []
    for unit in stage.sequence:
        modules.append(build_unit(unit, in_channels, conv_kwargs))
        in_channels = unit.channels(in_channels)
    if stage.bare:
        return modules[0]
    if stage.layout == "merged":
        merged: list[tuple[str, nn.Module]] = []
        for unit_name, module in zip(stage.unit_names, modules):
            merged += list(module.named_children()) if not unit_name else [(unit_name, module)]
        return nn.Sequential(OrderedDict(merged))
    if stage.unit_names:
        return nn.Sequential(OrderedDict(zip(stage.unit_names, modules)))
    return nn.Sequential(*modules)


def _head(head: HeadSpec, channels: int, num_classes: int) -> nn.Module:
    if head.kind == "fc_stack":
        return FCHead(channels, num_classes, head.pool_size, head.hidden, head.dropout, head.dropout_first)
    if head.kind == "conv_pool":
        return ConvClassifierHead(channels, num_classes, head.dropout)
    return ClassifierHead(channels, num_classes, head.dropout, head.bias, head.global_pool, head.scale)


def _aux(aux: AuxSpec, channels: int, num_classes: int, conv: ConvDefaults) -> nn.Module:
    if aux.kind == "inception_v3":
        return InceptionV3Aux(channels, num_classes, norm_eps=conv.norm_eps)
    return GoogLeNetAux(channels, num_classes, aux.dropout, aux.pool, aux.norm, conv.norm_eps, aux.conv_channels,
                        aux.hidden, aux.pool_size)


def _torchvision_squeezenet_init(model: nn.Module) -> None:
    # torchvision 0.29.1: He-uniform convs, zero biases; the classifier conv keeps its own N(0, 0.01) start
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d) and not name.startswith("head."):
            nn.init.kaiming_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def he_init(net: nn.Module, mode: str = "fan_out", zero_bias: bool = False, linear_std: float | None = None) -> None:
    """He init: conv weights N(0, 2 / (k^2 C_out)) as resnet-1k-layers and torchvision 0.29.1 (``mode="fan_in"``:
    2 / (k^2 C_in)), conv biases 0 with ``zero_bias``; BN scale 1, shift 0; with ``linear_std`` linear weights
    N(0, linear_std^2) and biases 0 (else PyTorch's)."""
    for m in net.modules():
        if any(p.is_meta for p in m.parameters(recurse=False)):
            continue  # meta tensors hold no values; sampling them only costs time (a 1202-layer net: seconds)
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if zero_bias and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def _zero_conv_bias_init(net: nn.Module) -> None:
    # PyTorch's default weights; biases 0 (airbench's whitening conv)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            nn.init.zeros_(m.bias)


def _he_zero_residual_init(net: nn.Module) -> None:
    he_init(net)
    for m in net.modules():
        if isinstance(m, tuple(_RESIDUAL_UNITS.values())):
            m.zero_init_last()


# spec.INITS names these; a spec read from JSON can only pick one of them. "he_zero_residual" starts every residual
# unit as its shortcut (Goyal et al. 2017), "he_fan_in" is the highway nets' init; torchvision 0.29.1's VGG init
# (He et al. 2015 convs, N(0, 0.01) linears) trains without the paper's staged start from configuration A (Sec. 3.1)
_INITS: dict[str, Callable[[nn.Module], None]] = {"": lambda model: None,
                                                  "torchvision_vgg": partial(he_init, zero_bias=True, linear_std=0.01),
                                                  "torchvision_squeezenet": _torchvision_squeezenet_init,
                                                  "he": he_init, "he_zero_residual": _he_zero_residual_init,
                                                  "he_fan_in": partial(he_init, mode="fan_in", zero_bias=True),
                                                  "zero_conv_bias": _zero_conv_bias_init}
