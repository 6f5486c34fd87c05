"""SqueezeNet: F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer (2016), "SqueezeNet:
AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size", arXiv:1602.07360.

v1.0 is Table 1; v1.1 is the revision published in the authors' repository (DeepScale/SqueezeNet: 3x3
conv1 with 64 filters and earlier pooling, "2.4x less computation"), as torchvision builds it. The
classifier is a 1x1 convolution (conv10) followed by global average pooling: no fully connected layer.
Stages are the rows of Table 1: ``conv1``, ``maxpool1``, ``fire2`` ... ``fire9``, then ``head``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from cnnlab.blocks.heads import ConvClassifierHead  # noqa: F401  (public here before it moved to the blocks)
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    ConvDefaults,
    FireSpec,
    HeadSpec,
    NetworkSpec,
    Unit,
    conv,
    max_pool,
    min_input_size,
    stage,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard


@dataclass(frozen=True)
class Conv:
    """A convolution + ReLU row (no padding, as in the paper's Caffe definition)."""

    name: str
    out_channels: int
    kernel: int
    stride: int


@dataclass(frozen=True)
class Pool:
    """A 3x3/2 max-pool row (ceil mode, as Caffe pools)."""

    name: str


@dataclass(frozen=True)
class FireRow:
    """A fire module row: squeeze 1x1, expand 1x1 and expand 3x3 widths (Table 1 columns s1x1, e1x1, e3x3)."""

    name: str
    squeeze: int
    expand1x1: int
    expand3x3: int


# Iandola et al. 2016, Table 1
SQUEEZENET_1_0 = (
    Conv("conv1", 96, kernel=7, stride=2),
    Pool("maxpool1"),
    FireRow("fire2", 16, 64, 64),
    FireRow("fire3", 16, 64, 64),
    FireRow("fire4", 32, 128, 128),
    Pool("maxpool4"),
    FireRow("fire5", 32, 128, 128),
    FireRow("fire6", 48, 192, 192),
    FireRow("fire7", 48, 192, 192),
    FireRow("fire8", 64, 256, 256),
    Pool("maxpool8"),
    FireRow("fire9", 64, 256, 256),
)
# DeepScale/SqueezeNet v1.1 (torchvision 0.29.1 squeezenet1_1): same fire modules, pools moved earlier
_FIRES = tuple(row for row in SQUEEZENET_1_0 if isinstance(row, FireRow))  # fire2 .. fire9
SQUEEZENET_1_1 = (Conv("conv1", 64, kernel=3, stride=2), Pool("maxpool1"), *_FIRES[:2], Pool("maxpool3"),
                  *_FIRES[2:4], Pool("maxpool5"), *_FIRES[4:])
_TABLES = {"1_0": SQUEEZENET_1_0, "1_1": SQUEEZENET_1_1}
# Sec. 6.2 / Fig. 2 (middle): simple bypass around the fire modules whose input and output widths match
SIMPLE_BYPASS = ("fire3", "fire5", "fire7", "fire9")
DROPOUT = 0.5  # Sec. 5: "dropout with a ratio of 50% after the fire9 module"


def squeezenet_spec(version: str = "1_0", num_classes: int = 1000, bypass: bool = False, dropout: float = DROPOUT,
                    in_channels: int = 3, name: str = "") -> NetworkSpec:
    """SqueezeNet ``version`` "1_0" (Table 1) or "1_1" as a spec; ``bypass`` adds the simple bypass of Sec. 6.2."""
    if version not in _TABLES:
        raise ValueError(f"version must be one of {sorted(_TABLES)}, got {version!r}")
    stages = []
    for row in _TABLES[version]:
        if isinstance(row, Conv):
            unit: Unit = conv(row.out_channels, row.kernel, row.stride, padding=0)
        elif isinstance(row, Pool):
            unit = max_pool(3, 2, ceil_mode=True)
        else:
            unit = FireSpec(row.squeeze, row.expand1x1, row.expand3x3, bypass and row.name in SIMPLE_BYPASS)
        stages.append(stage(row.name, unit))
    return NetworkSpec(name or f"squeezenet{version}", tuple(stages), HeadSpec("conv_pool", dropout), num_classes,
                       in_channels, conv=ConvDefaults(norm=False), init="torchvision_squeezenet")


def squeezenet(version: str = "1_0", num_classes: int = 1000, bypass: bool = False, dropout: float = DROPOUT,
               in_channels: int = 3, name: str = "") -> Network:
    """Build SqueezeNet ``version`` "1_0" (Table 1) or "1_1"; ``bypass`` adds the simple bypass of Sec. 6.2."""
    return build(squeezenet_spec(version, num_classes, bypass, dropout, in_channels, name))


# smallest H = W for which every pool still sees a window (21 and 17), from the spec's layer arithmetic
MIN_INPUT_SIZE = {v: min_input_size(squeezenet_spec(v)) for v in ("1_0", "1_1")}


def _torchvision_rules(table: tuple) -> tuple[tuple[str, str], ...]:
    """torchvision's ``features`` Sequential holds conv + relu, then one entry per pool or fire row."""
    rules = []
    index = 0
    for row in table:
        if isinstance(row, Conv):
            rules.append((rf"^features\.{index}\.", f"{row.name}.conv."))
            index += 2
        else:
            if isinstance(row, FireRow):
                rules.append((rf"^features\.{index}\.(\w+)\.", rf"{row.name}.\1.conv."))
            index += 1
    return (*rules, (r"^classifier\.1\.", "head.fc."))  # classifier: Dropout, Conv2d, ReLU, AdaptiveAvgPool2d


_PAPER = ("F. N. Iandola, S. Han, M. W. Moskewicz, K. Ashraf, W. J. Dally, K. Keutzer (2016). SqueezeNet: "
          "AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size. arXiv:1602.07360")
_HEAD_NOTE = "The classifier head.fc is a 1x1 convolution (conv10), as in the paper."
_CARDS = (
    ("squeezenet1_0", "1_0", False, 1_248_424, 818_924_576,
     "paper Table 1 (v1.0); layout and counts of torchvision 0.29.1 squeezenet1_0",
     "Initialisation is torchvision's (He-uniform convs, N(0, 0.01) classifier)."),
    ("squeezenet1_1", "1_1", False, 1_235_496, 349_151_936,
     "DeepScale/SqueezeNet v1.1 as torchvision 0.29.1 squeezenet1_1",
     "Not in the paper: v1.1 comes from the authors' repository (3x3/2 conv1 with 64 filters, pools after "
     "conv1, fire3 and fire5)."),
    ("squeezenet1_0_bypass", "1_0", True, 1_248_424, 818_924_576,
     "paper Sec. 6.2 / Fig. 2 (middle): v1.0 with simple bypass around fire3, fire5, fire7, fire9",
     "Counts are those of squeezenet1_0 (torchvision 0.29.1): the identity bypass adds no parameters and its "
     "additions are not MACs. No torchvision counterpart."),
)

for _name, _version, _bypass, _params, _macs, _follows, _differences in _CARDS:
    MODELS.register(
        ModelCard(
            name=_name,
            paper=_PAPER,
            input_size=(3, 224, 224),
            reference=Counts(params=_params, macs=_macs, source="torchvision 0.29.1 (docs/references.md)"),
            follows=_follows,
            differences=f"{_differences} {_HEAD_NOTE}",
            min_input_size=MIN_INPUT_SIZE[_version],
            family="squeezenet",
            tags=("imagenet", "compact") + (("bypass",) if _bypass else ()),
            converters={} if _bypass else {"torchvision": Converter(_torchvision_rules(_TABLES[_version]))},
        ),
        partial(squeezenet, _version, bypass=_bypass, name=_name),
        spec=partial(squeezenet_spec, _version, bypass=_bypass, name=_name),
    )
