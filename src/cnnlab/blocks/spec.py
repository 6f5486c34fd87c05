"""The block-level part of the spec dialect: a layer, a branch (layers in order) and a multi-branch module
(branches concatenated, an Inception module) as frozen dataclasses, and the code that builds layers and
branches (``cnnlab.blocks.multibranch.build_multi_branch`` builds the modules).

``cnnlab.models.spec`` adds stages and whole networks on top and re-exports these names. The paper modules of
``cnnlab.blocks.inception`` are written once, as ``MultiBranchSpec`` s, for the zoo and the block classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.conv import AsymmetricConv, ConvNormAct, StackedConv
from cnnlab.blocks.residual import norm_act

LAYER_KINDS = ("conv", "conv_split", "conv_stack", "conv_asymmetric", "max_pool", "avg_pool", "lrn",
               "norm_act")
ACT_KINDS = ("relu", "gelu")  # a conv's activation by name (True: ReLU, False: none)


def _tuple(value: object) -> object:
    """JSON has lists where specs have tuples; specs store tuples so that equal specs compare equal."""
    return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def _check_kind(kind: object, known: tuple[str, ...], what: str) -> None:
    if kind not in known:
        raise ValueError(f"unknown {what} kind {kind!r}; known kinds: {', '.join(k for k in known if k)}")


def _positive(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ConvDefaults:
    """How the ``conv`` layers of a network are built: batch norm or not, its epsilon and momentum, the conv
    bias (None: a bias only without a norm), the activation (True: ReLU, False: none, or a name in
    ``ACT_KINDS``). A layer's own ``options`` replace the network's."""

    norm: bool = True
    norm_eps: float = 1e-5
    bias: bool | None = None
    act: bool | str = True
    norm_momentum: float = 0.1

    def __post_init__(self) -> None:
        if not isinstance(self.act, bool):
            _check_kind(self.act, ACT_KINDS, "activation")


@dataclass(frozen=True)
class LayerSpec:
    """One layer. ``conv`` is a ConvNormAct (``pool``: a ``pool x pool`` max-pool between conv and norm,
    airbench); ``conv_split`` is ``1 x k`` and ``k x 1`` side by side (2x the channels, Inception-v3 Fig. 7);
    ``conv_stack`` is a ``k x k`` field as stacked 3x3 (StackedConv), ``conv_asymmetric`` as ``k x 1`` then
    ``1 x k`` (AsymmetricConv); pools and ``lrn`` (``kernel`` = its size) keep the channels.

    ``padding=None`` is "same" for convolutions (at stride 1) and 0 for pools; ``options`` replace the
    network's conv defaults for this layer (a pre-activation net's bare stem conv). ``norm_act`` is BN, ReLU.
    """

    kind: str
    out_channels: int = 0
    kernel: int | tuple[int, int] = 1
    stride: int = 1
    padding: int | tuple[int, int] | None = None
    ceil_mode: bool = False
    count_include_pad: bool = True
    options: ConvDefaults | None = None
    pool: int | None = None

    def __post_init__(self) -> None:
        _check_kind(self.kind, LAYER_KINDS, "layer")
        object.__setattr__(self, "kernel", _tuple(self.kernel))
        object.__setattr__(self, "padding", _tuple(self.padding))
        if self.kind.startswith("conv"):
            _positive(self.out_channels, f"{self.kind} out_channels")
        for k in self.kernel if isinstance(self.kernel, tuple) else (self.kernel,):
            _positive(k, f"{self.kind} kernel")
        _positive(self.stride, f"{self.kind} stride")
        if self.pool is not None:
            _positive(self.pool, "conv pool")
            if self.kind != "conv":
                raise ValueError(f"pool applies to conv layers only, not to {self.kind}")
        if self.kind in ("conv_split", "conv_stack", "conv_asymmetric") and self.padding is not None:
            raise ValueError(f"{self.kind} pads to keep the size; leave padding None")

    def channels(self, in_channels: int) -> int:
        """Output channels for ``in_channels`` inputs."""
        if self.kind == "conv_split":
            return 2 * self.out_channels
        return self.out_channels if self.kind.startswith("conv") else in_channels

    def size(self, size: int, axis: int) -> int:
        """Output length along ``axis`` (0: H, 1: W) for an input of ``size``; < 1: PyTorch refuses it."""
        kernel = _pair(self.kernel)[axis]
        if self.kind in ("lrn", "norm_act"):
            return size
        if self.kind.startswith("conv"):
            pad = (kernel - 1) // 2 if self.padding is None else _pair(self.padding)[axis]
            out = (size + 2 * pad - kernel) // self.stride + 1 if size + 2 * pad >= kernel else 0
            return out // (self.pool or 1)
        pad = 0 if self.padding is None else _pair(self.padding)[axis]
        extra = self.stride - 1 if self.ceil_mode else 0
        out = (size + 2 * pad - kernel + extra) // self.stride + 1
        if self.ceil_mode and (out - 1) * self.stride >= size + pad:
            out -= 1  # PyTorch: the last window must start inside the input or its left padding
        return out


def _pair(value: int | tuple[int, int] | None) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)  # type: ignore[return-value]


def conv(out_channels: int, kernel: int | tuple[int, int] = 3, stride: int = 1,
         padding: int | tuple[int, int] | None = None, options: ConvDefaults | None = None,
         pool: int | None = None) -> LayerSpec:
    """A ConvNormAct layer; ``padding=None`` keeps the size at stride 1, ``0`` is the papers' "V" (valid)."""
    return LayerSpec("conv", out_channels, kernel, stride, padding, options=options, pool=pool)


def conv_split(out_channels: int, kernel: int = 3) -> LayerSpec:
    """``1 x k`` and ``k x 1`` convolutions side by side on one input, concatenated (``2 * out_channels``)."""
    return LayerSpec("conv_split", out_channels, kernel)


def max_pool(kernel: int = 3, stride: int = 2, padding: int = 0, ceil_mode: bool = False) -> LayerSpec:
    return LayerSpec("max_pool", 0, kernel, stride, padding, ceil_mode)


def avg_pool(kernel: int = 3, stride: int = 1, padding: int = 1, count_include_pad: bool = True) -> LayerSpec:
    return LayerSpec("avg_pool", 0, kernel, stride, padding, count_include_pad=count_include_pad)


def lrn(size: int = 5) -> LayerSpec:
    """Local response normalisation over ``size`` channels (alpha 1e-4, beta 0.75: AlexNet, GoogLeNet)."""
    return LayerSpec("lrn", 0, size)


@dataclass(frozen=True)
class BranchSpec:
    """Layers applied in order; a branch of one layer builds that layer bare (as torchvision names it). As a
    stage's unit it is a Sequential of its layers (cifar_convnet's studied layer)."""

    layers: tuple[LayerSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers or not all(isinstance(x, LayerSpec) for x in self.layers):
            raise ValueError(f"a branch is a non-empty tuple of LayerSpec, got {self.layers!r}")

    def channels(self, in_channels: int) -> int:
        for layer in self.layers:
            in_channels = layer.channels(in_channels)
        return in_channels

    def size(self, size: int, axis: int) -> int:
        for layer in self.layers:
            size = layer.size(size, axis) if size >= 1 else 0
        return size


def branch(*layers: LayerSpec) -> BranchSpec:
    return BranchSpec(layers)


@dataclass(frozen=True)
class MultiBranchSpec:
    """Branches on one input, concatenated on channels in order (an Inception module).

    ``residual=True`` is an Inception-ResNet unit: ``act(x + scale * expand(concat))`` with a biased 1x1
    ``expand`` back to the input depth (Szegedy et al. 2017, Sec. 3.2); ``activate=False`` drops the ReLU.
    ``projection=True`` keeps the branches' depth instead (``expand`` to it) and adds ``x`` through He et
    al.'s option B shortcut (a 1x1 conv + BN where the depths differ).
    """

    branches: tuple[BranchSpec, ...]
    residual: bool = False
    scale: float = 1.0
    activate: bool = True
    projection: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        if not self.branches or not all(isinstance(b, BranchSpec) for b in self.branches):
            raise ValueError(f"a multi-branch module is a non-empty tuple of BranchSpec, "
                             f"got {self.branches!r}")
        number = isinstance(self.scale, (int, float)) and not isinstance(self.scale, bool)
        if not (number and 0 <= self.scale < math.inf):
            raise ValueError(f"scale must be a finite number >= 0, got {self.scale!r}")
        if self.projection and not self.residual:
            raise ValueError("projection applies to residual modules only; pass residual=True with it")

    def channels(self, in_channels: int) -> int:
        if self.residual and not self.projection:
            return in_channels
        return sum(b.channels(in_channels) for b in self.branches)

    def size(self, size: int, axis: int) -> int:
        sizes = {b.size(size, axis) for b in self.branches}
        return sizes.pop() if len(sizes) == 1 else 0  # branches that disagree cannot be concatenated


def multi_branch(*branches: BranchSpec | LayerSpec | tuple[LayerSpec, ...], residual: bool = False,
                 scale: float = 1.0, activate: bool = True, projection: bool = False) -> MultiBranchSpec:
    """An Inception module from branches given as BranchSpecs, single layers or tuples of layers."""
    made = tuple(b if isinstance(b, BranchSpec) else BranchSpec(b if isinstance(b, tuple) else (b,))
                 for b in branches)
    return MultiBranchSpec(made, residual, scale, activate, projection)


# ----------------------------------------------------------------------------------------------------------
# building


def conv_kwargs_for(defaults: ConvDefaults) -> dict[str, object]:
    """The ConvNormAct keyword arguments that ``defaults`` stand for (as ``build_layer`` takes them)."""
    kwargs: dict[str, object] = {"norm": defaults.norm, "norm_eps": defaults.norm_eps, "bias": defaults.bias,
                                 "norm_momentum": defaults.norm_momentum}
    if defaults.act is not True:
        kwargs["act"] = defaults.act or None
    return kwargs


def build_layer(layer: LayerSpec, in_channels: int, conv_kwargs: dict[str, object]) -> nn.Module:
    """One layer of a spec as a module."""
    if layer.options is not None:
        conv_kwargs = conv_kwargs_for(layer.options)
    if layer.kind == "conv":
        return ConvNormAct(in_channels, layer.out_channels, layer.kernel, layer.stride, layer.padding,
                           pool=layer.pool, **conv_kwargs)  # type: ignore[arg-type]
    if layer.kind == "conv_stack":
        return StackedConv(in_channels, layer.out_channels, layer.kernel,  # type: ignore[arg-type]
                           layer.stride, **conv_kwargs)
    if layer.kind in ("conv_split", "conv_asymmetric"):
        return AsymmetricConv(in_channels, layer.out_channels, layer.kernel,  # type: ignore[arg-type]
                              parallel=layer.kind == "conv_split", **conv_kwargs)
    padding = 0 if layer.padding is None else layer.padding
    if layer.kind == "max_pool":
        return nn.MaxPool2d(layer.kernel, layer.stride, padding, ceil_mode=layer.ceil_mode)
    if layer.kind == "avg_pool":
        return nn.AvgPool2d(layer.kernel, layer.stride, padding, ceil_mode=layer.ceil_mode,
                            count_include_pad=layer.count_include_pad)
    if layer.kind == "norm_act":
        return norm_act(in_channels)
    return nn.LocalResponseNorm(layer.kernel, alpha=1e-4, beta=0.75)  # type: ignore[arg-type]  # "lrn"


def build_branch(branch: BranchSpec, in_channels: int, conv_kwargs: dict[str, object]) -> nn.Module:
    modules = []
    for layer in branch.layers:
        modules.append(build_layer(layer, in_channels, conv_kwargs))
        in_channels = layer.channels(in_channels)
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


def build_branches(spec: MultiBranchSpec, in_channels: int,
                   conv_kwargs: dict[str, object]) -> list[tuple[nn.Module, int]]:
    """The ``(module, out_channels)`` pairs of ``spec``'s branches, as ``MultiBranch`` takes them."""
    return [(build_branch(b, in_channels, conv_kwargs), b.channels(in_channels)) for b in spec.branches]
