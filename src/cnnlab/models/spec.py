"""Networks as data: frozen dataclasses in which a row of a paper's table is one line.

A ``NetworkSpec`` is a tuple of named stages, a head and optional auxiliary heads. A stage holds one unit
(a layer or a multi-branch module) or a named / repeated sequence of units; a multi-branch module (an
Inception module) is a tuple of branches, each a tuple of layers, with an optional scaled residual add
(Inception-ResNet). ``cnnlab.models.build`` is the only code that turns a spec into modules.

The layer, branch and multi-branch dataclasses live in ``cnnlab.blocks.spec`` (the blocks build from them
too) and are importable from here. Specs are plain data: ``to_json`` / ``from_json`` round-trip them, and
loading accepts only the spec dataclasses and the kinds listed in ``LAYER_KINDS``, ``HEAD_KINDS``,
``AUX_KINDS``, ``ACT_KINDS`` and ``INITS``, so a JSON file can never name code to run. ``min_input_size``
computes the smallest square input a spec accepts from the layer arithmetic alone (PyTorch's output-size
rules), so no family keeps that number by hand.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from cnnlab.blocks.spec import (  # the block-level dialect, importable from here as before
    ACT_KINDS,  # noqa: F401
    LAYER_KINDS,  # noqa: F401
    BranchSpec,
    ConvDefaults,
    LayerSpec,
    MultiBranchSpec,
    _check_kind,
    _positive,
    avg_pool,
    branch,  # noqa: F401
    conv,
    conv_split,  # noqa: F401
    lrn,  # noqa: F401
    max_pool,  # noqa: F401
    multi_branch,  # noqa: F401
)

RESIDUAL_KINDS = ("basic", "bottleneck")
SHORTCUTS = ("A", "B", "C", False)  # He et al. 2015, Sec. 3.3; False: no shortcut (the plain nets)
STAGE_LAYOUTS = ("auto", "sequential", "merged")
HEAD_KINDS = ("pool_fc", "fc_stack", "conv_pool")
AUX_KINDS = ("googlenet", "inception_v3")
# "": PyTorch's default init of every module; the others are described where models/build.py defines them
INITS = ("", "torchvision_vgg", "torchvision_squeezenet", "he", "he_zero_residual", "he_fan_in", "zero_conv_bias")


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
