"""Networks as data: frozen dataclasses in which a row of a paper's table is one line.

A ``NetworkSpec`` is a tuple of named stages, a head and optional auxiliary heads. A stage holds one unit
(a layer or a multi-branch module) or a named / repeated sequence of units; a multi-branch module (an
Inception module) is a tuple of branches, each a tuple of layers, with an optional scaled residual add
(Inception-ResNet). ``cnnlab.models.build`` is the only code that turns a spec into modules.

Specs are plain data: ``to_json`` / ``from_json`` round-trip them, and loading accepts only the dataclasses
below and the kinds listed in ``LAYER_KINDS``, ``HEAD_KINDS``, ``AUX_KINDS``, ``ACT_KINDS`` and ``INITS``, so a
JSON file can never name code to run. ``min_input_size`` computes the smallest square input a spec accepts from
the layer arithmetic alone (PyTorch's output-size rules), so no family keeps that number by hand.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

LAYER_KINDS = ("conv", "conv_split", "conv_stack", "conv_asymmetric", "max_pool", "avg_pool", "lrn", "norm_act")
RESIDUAL_KINDS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C", False)  # He et al. 2015, Sec. 3.3; False: no shortcut (the plain nets)
STAGE_LAYOUTS = ("auto", "sequential", "merged")
HEAD_KINDS = ("pool_fc", "fc_stack", "conv_pool")
ACT_KINDS = ("relu", "gelu")  # a conv's activation by name (True: ReLU, False: none)
AUX_KINDS = ("googlenet", "inception_v3")
# "": PyTorch's default init of every module; the others are described where models/build.py defines them
INITS = ("", "torchvision_vgg", "torchvision_squeezenet", "he", "he_zero_residual", "he_fan_in", "zero_conv_bias")


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
    """How the ``conv`` layers of a network are built: batch norm or not, its epsilon and momentum, the conv bias
    (None: a bias only without a norm), the activation (True: ReLU, False: none, or a name in ``ACT_KINDS``).
    A layer's own ``options`` replace the network's."""

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
    """One layer. ``conv`` is a ConvNormAct (``pool``: a ``pool x pool`` max-pool between conv and norm, airbench);
    ``conv_split`` is ``1 x k`` and ``k x 1`` side by side (2x the channels, Inception-v3 Fig. 7); ``conv_stack``
    is a ``k x k`` field as stacked 3x3 (StackedConv), ``conv_asymmetric`` as ``k x 1`` then ``1 x k``
    (AsymmetricConv); pools and ``lrn`` (``kernel`` = its size) keep the channels.

    ``padding=None`` is "same" for convolutions (at stride 1) and 0 for pools; ``options`` replace the network's
    conv defaults for this layer (a pre-activation net's bare stem conv). ``norm_act`` is BN then ReLU.
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
        """Output length along ``axis`` (0: H, 1: W) for an input of ``size``; < 1 means PyTorch refuses it."""
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
    ``projection=True`` keeps the branches' depth instead (``expand`` to it) and adds ``x`` through He et al.'s
    option B shortcut (a 1x1 conv + BN where the depths differ).
    """

    branches: tuple[BranchSpec, ...]
    residual: bool = False
    scale: float = 1.0
    activate: bool = True
    projection: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "branches", tuple(self.branches))
        if not self.branches or not all(isinstance(b, BranchSpec) for b in self.branches):
            raise ValueError(f"a multi-branch module is a non-empty tuple of BranchSpec, got {self.branches!r}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 <= self.scale < math.inf:
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


@dataclass(frozen=True)
class ResidualSpec:
    """A ResNet unit (He et al. 2015 Fig. 5; ``preact``: He et al. 2016 Fig. 4e): ``basic`` (two 3x3) or
    ``bottleneck`` (1x1, 3x3, 1x1 to ``out_channels``), shortcut option A / B / C or False (plain).
    ``stride_in_1x1``: a bottleneck strides its first 1x1 (the papers) rather than its 3x3 (torchvision)."""

    kind: str
    out_channels: int
    stride: int = 1
    preact: bool = False
    shortcut: str | bool = "B"
    stride_in_1x1: bool = False

    def __post_init__(self) -> None:
        _check_kind(self.kind, RESIDUAL_KINDS, "residual unit")
        _positive(self.out_channels, f"{self.kind} out_channels")
        _positive(self.stride, f"{self.kind} stride")
        if not (self.shortcut is False or (isinstance(self.shortcut, str) and self.shortcut in SHORTCUTS)):
            raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {self.shortcut!r}")
        if self.stride_in_1x1 and self.kind != "bottleneck":
            raise ValueError("stride_in_1x1 applies to bottleneck units only; leave it False for basic units")

    def channels(self, in_channels: int) -> int:
        return self.out_channels

    def size(self, size: int, axis: int) -> int:
        return (size - 1) // self.stride + 1  # padded 3x3 / 1x1 convs and the subsampling shortcut agree


@dataclass(frozen=True)
class FireSpec:
    """SqueezeNet's fire module (Iandola et al. 2016, Fig. 1): squeeze 1x1, then expand 1x1 and 3x3 side by side;
    ``bypass`` adds the input (Sec. 6.2, equal depths only). Keeps the grid."""

    squeeze: int
    expand1x1: int
    expand3x3: int
    bypass: bool = False

    def __post_init__(self) -> None:
        for f in ("squeeze", "expand1x1", "expand3x3"):
            _positive(getattr(self, f), f"fire {f}")

    def channels(self, in_channels: int) -> int:
        return self.expand1x1 + self.expand3x3

    def size(self, size: int, axis: int) -> int:
        return size


@dataclass(frozen=True)
class HighwayConvSpec:
    """A convolutional highway layer (Srivastava et al. 2015): ``H(x) T(x) + x (1 - T(x))``, ``kernel`` convs for
    ``H`` (bias, ReLU) and the gate ``T``, whose bias starts at ``gate_bias``. Keeps depth and grid."""

    kernel: int = 3
    gate_bias: float = -1.0

    def channels(self, in_channels: int) -> int:
        return in_channels

    def size(self, size: int, axis: int) -> int:
        return size


Unit = LayerSpec | BranchSpec | MultiBranchSpec | ResidualSpec | FireSpec | HighwayConvSpec


@dataclass(frozen=True)
class StageSpec:
    """A named stage: one unit built bare, or a sequence (``units`` repeated ``repeat`` times), whose children
    are named ``unit_names`` (TF-slim's stems) or numbered from 0.

    ``layout="sequential"`` builds a Sequential even for one unit; ``"merged"`` puts the layers of each conv
    unit side by side with the other units, named by ``unit_names`` ("" for a conv: torchvision's ResNet stem
    ``conv, bn, act, pool``).
    """

    name: str
    units: tuple[Unit, ...]
    unit_names: tuple[str, ...] = ()
    repeat: int = 1
    layout: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", tuple(self.units))
        object.__setattr__(self, "unit_names", tuple(self.unit_names))
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"stage name must be a Python identifier, got {self.name!r}")
        if not self.units or not all(isinstance(u, Unit) for u in self.units):
            raise ValueError(f"stage {self.name!r}: units must be one of "
                             f"{', '.join(t.__name__ for t in Unit.__args__)}, got {self.units!r}")
        _check_kind(self.layout, STAGE_LAYOUTS, "stage layout")
        if self.layout == "merged" and len(self.unit_names) != len(self.units):
            raise ValueError(f"stage {self.name!r}: a merged stage names every unit ('' for a conv unit)")
        _positive(self.repeat, f"stage {self.name!r} repeat")
        if self.unit_names and (len(self.unit_names) != len(self.units) or self.repeat != 1):
            raise ValueError(f"stage {self.name!r}: give one unit name per unit (and repeat=1), "
                             f"got {len(self.unit_names)} names for {len(self.units)} units")

    @property
    def sequence(self) -> tuple[Unit, ...]:
        return self.units * self.repeat

    @property
    def bare(self) -> bool:
        """True when the stage is its single unit rather than a Sequential of units."""
        return len(self.units) == 1 and self.repeat == 1 and not self.unit_names and self.layout == "auto"

    def channels(self, in_channels: int) -> int:
        for unit in self.sequence:
            in_channels = unit.channels(in_channels)
        return in_channels

    def size(self, size: int, axis: int) -> int:
        for unit in self.sequence:
            size = unit.size(size, axis) if size >= 1 else 0
        return size


def stage(name: str, *units: Unit, names: tuple[str, ...] = (), repeat: int = 1, layout: str = "auto") -> StageSpec:
    return StageSpec(name, units, names, repeat, layout)


@dataclass(frozen=True)
class HeadSpec:
    """``pool_fc``: global pool (``global_pool`` "avg" or "max"), dropout, linear (``bias``), logits x ``scale``
    (ClassifierHead). ``fc_stack``: adaptive pool to ``pool_size``, hidden fully connected layers ``hidden``
    (fc6, fc7, ...), classifier (FCHead: AlexNet, VGG). ``conv_pool``: dropout, 1x1 conv classifier, ReLU,
    global average pool (SqueezeNet's conv10)."""

    kind: str = "pool_fc"
    dropout: float = 0.0
    hidden: tuple[int, ...] = ()
    pool_size: int = 1
    dropout_first: bool = False
    global_pool: str = "avg"
    bias: bool = True
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check_kind(self.kind, HEAD_KINDS, "head")
        _check_kind(self.global_pool, ("avg", "max"), "global pool")
        object.__setattr__(self, "hidden", tuple(self.hidden))


@dataclass(frozen=True)
class AuxSpec:
    """An auxiliary classifier after stage ``after`` (train mode only): GoogLeNet's (``pool`` "paper" 5x5/3 or
    torchvision's "adaptive", ``norm`` its conv's BN; ``conv_channels``, ``hidden``, ``pool_size`` scale it to a
    smaller net) or Inception-v3's."""

    kind: str
    after: str
    dropout: float = 0.7
    pool: str = "paper"
    norm: bool = False
    conv_channels: int = 128
    hidden: int = 1024
    pool_size: int = 4

    def __post_init__(self) -> None:
        _check_kind(self.kind, AUX_KINDS, "aux head")

    def size(self, size: int, axis: int) -> int:
        """The grid after the aux head's fixed-size layers (>= 1: it runs)."""
        if self.kind == "googlenet" and self.pool != "paper":
            return size  # adaptive pooling takes any grid
        size = avg_pool(5, 3, 0).size(size, axis) if size >= 1 else 0
        return conv(768, 5, padding=0).size(size, axis) if self.kind == "inception_v3" and size >= 1 else size


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: stages in order, a head, auxiliary heads, and the conv defaults and init to build with.
    ``train_norm_scale=False`` keeps every BN scale at 1, untrained (airbench)."""

    name: str
    stages: tuple[StageSpec, ...]
    head: HeadSpec = HeadSpec()
    num_classes: int = 1000
    in_channels: int = 3
    aux: tuple[AuxSpec, ...] = ()
    conv: ConvDefaults = ConvDefaults()
    init: str = ""
    train_norm_scale: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "aux", tuple(self.aux))
        _positive(self.num_classes, "num_classes")
        _positive(self.in_channels, "in_channels")
        _check_kind(self.init, INITS, "init")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: stage names repeat: {names}")
        for aux in self.aux:
            if aux.after not in names:
                raise ValueError(f"{self.name}: aux head after unknown stage {aux.after!r}; stages are {names}")


def _runs(spec: NetworkSpec, size: int, with_aux: bool) -> bool:
    for axis in (0, 1):
        current = size
        for s in spec.stages:
            current = s.size(current, axis)
            if current < 1:
                return False
            if with_aux and any(a.size(current, axis) < 1 for a in spec.aux if a.after == s.name):
                return False
    return True


def min_input_size(spec: NetworkSpec, *, with_aux: bool = False, limit: int = 4096) -> int:
    """The smallest square input H = W that ``spec`` runs on (``with_aux``: its aux heads too, train mode)."""
    for size in range(1, limit + 1):
        if _runs(spec, size, with_aux):
            return size
    raise ValueError(f"{spec.name}: no input up to {limit}x{limit} runs through the network; check its strides")


# ----------------------------------------------------------------------------------------------------------
# JSON: every dataclass is an object with a "type" tag; fields left at their defaults are omitted

_TYPES: dict[str, type] = {"layer": LayerSpec, "branch": BranchSpec, "multi_branch": MultiBranchSpec,
                           "residual": ResidualSpec, "fire": FireSpec, "highway_conv": HighwayConvSpec,
                           "stage": StageSpec, "head": HeadSpec, "aux": AuxSpec, "conv_defaults": ConvDefaults,
                           "network": NetworkSpec}
_TAGS = {cls: tag for tag, cls in _TYPES.items()}


def to_data(spec: object) -> object:
    """Plain data (dicts, lists, numbers, strings) for a spec; ``from_data`` inverts it."""
    if type(spec) in _TAGS:
        data: dict[str, object] = {"type": _TAGS[type(spec)]}
        for f in dataclasses.fields(spec):  # type: ignore[arg-type]
            value = getattr(spec, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                data[f.name] = to_data(value)
        return data
    if isinstance(spec, tuple):
        return [to_data(v) for v in spec]
    if spec is None or isinstance(spec, (bool, int, float, str)):
        return spec
    raise TypeError(f"cannot write {type(spec).__name__} into a spec; specs hold only spec dataclasses and numbers")


def from_data(data: object) -> object:
    """A spec from ``to_data``'s output; only the spec dataclasses and known kinds are accepted, so no code runs."""
    if isinstance(data, dict):
        tag = data.get("type")
        if tag not in _TYPES:
            raise ValueError(f"unknown spec type {tag!r}; known types: {', '.join(_TYPES)}")
        cls = _TYPES[tag]
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - {"type"})
        if unknown:
            raise ValueError(f"{tag} spec has unknown fields {unknown}; known fields: {sorted(names)}")
        return cls(**{k: from_data(v) for k, v in data.items() if k != "type"})
    if isinstance(data, list):
        return tuple(from_data(v) for v in data)
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    raise ValueError(f"a spec holds objects, lists, numbers and strings only, got {type(data).__name__}")


def to_json(spec: NetworkSpec, indent: int | None = None) -> str:
    return json.dumps(to_data(spec), indent=indent)


def from_json(text: str) -> NetworkSpec:
    """The NetworkSpec in ``text`` (from ``to_json``); a one-line ValueError for anything else."""
    spec = from_data(json.loads(text))
    if not isinstance(spec, NetworkSpec):
        raise ValueError(f"expected a network spec (type 'network'), got {type(spec).__name__}")
    return spec
