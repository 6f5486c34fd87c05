"""VGG: Simonyan & Zisserman 2015, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
ICLR 2015, arXiv:1409.1556.

Configurations A, B, D, E of Table 1 (VGG-11/13/16/19): stacks of 3x3 convolutions (Sec. 2.3: three 3x3
layers see a 7x7 field with 27 C^2 weights instead of 49 C^2), a 2x2 max-pool after each block, and three
fully connected layers. Stages are the paper's layers: ``conv1_1 ... conv5_x``, ``pool1 ... pool5``, ``head``.
"""

from __future__ import annotations

from functools import partial

from cnnlab.blocks.heads import FCHead  # noqa: F401  (public here before it moved to the blocks)
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import ConvDefaults, HeadSpec, NetworkSpec, conv, max_pool, min_input_size, stage
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

# Simonyan & Zisserman 2015, Table 1: the conv widths of each block; every block ends in a 2x2/2 max-pool
CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((64,), (128,), (256, 256), (512, 512), (512, 512)),  # 11 weight layers
    "B": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),  # 13
    "D": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),  # 16
    "E": ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512, 512, 512, 512)),  # 19
}
FC_WIDTHS = (4096, 4096)  # fc6, fc7 (Table 1, "FC-4096"); fc8 is the classifier
POOLED_SIZE = 7  # 224 / 2^5: the grid fc6 sees; torchvision pools to it adaptively so any size >= 32 works
DROPOUT = 0.5  # Sec. 3.1: "dropout regularisation for the first two fully-connected layers (dropout ratio 0.5)"

# (cnnlab name, config, batch norm, params, MACs at 224, count source); counts: torchvision 0.29.1
_SOURCE = "torchvision 0.29.1 (docs/references.md)"
_MEASURED = "torchvision 0.29.1, FlopCounterMode conv+addmm / 2, measured for this card"
_VARIANTS = (
    ("vgg11", "A", False, 132_863_336, 7_609_090_048, _MEASURED),
    ("vgg13", "B", False, 133_047_848, 11_308_466_176, _MEASURED),
    ("vgg16", "D", False, 138_357_544, 15_470_264_320, _SOURCE),
    ("vgg19", "E", False, 143_667_240, 19_632_062_464, _SOURCE),
    ("vgg11_bn", "A", True, 132_868_840, 7_609_090_048, _MEASURED),
    ("vgg13_bn", "B", True, 133_053_736, 11_308_466_176, _MEASURED),
    ("vgg16_bn", "D", True, 138_365_992, 15_470_264_320, _MEASURED),
    ("vgg19_bn", "E", True, 143_678_248, 19_632_062_464, _MEASURED),
)


def vgg_spec(config: str, batch_norm: bool = False, num_classes: int = 1000, dropout: float = DROPOUT,
             in_channels: int = 3, name: str = "") -> NetworkSpec:
    """VGG configuration ``config`` ("A", "B", "D", "E") of Table 1 as a spec, optionally with batch norm."""
    if config not in CONFIGS:
        raise ValueError(f"config must be one of {sorted(CONFIGS)} (Table 1), got {config!r}")
    stages = []
    for block, widths in enumerate(CONFIGS[config], start=1):
        stages += [stage(f"conv{block}_{layer}", conv(width)) for layer, width in enumerate(widths, start=1)]
        stages.append(stage(f"pool{block}", max_pool(2, 2)))
    # conv bias kept next to batch norm, as torchvision does, so its weights load one to one
    return NetworkSpec(name, tuple(stages), HeadSpec("fc_stack", dropout, FC_WIDTHS, POOLED_SIZE), num_classes,
                       in_channels, conv=ConvDefaults(norm=batch_norm, bias=True), init="torchvision_vgg")


def vgg(config: str, batch_norm: bool = False, num_classes: int = 1000, dropout: float = DROPOUT,
        in_channels: int = 3, name: str = "") -> Network:
    """Build VGG configuration ``config`` ("A", "B", "D", "E") of Table 1, optionally with batch norm."""
    return build(vgg_spec(config, batch_norm, num_classes, dropout, in_channels, name))


MIN_INPUT_SIZE = min_input_size(vgg_spec("A"))  # 32: five 2x2/2 max-pools need at least 2^5 pixels


def _torchvision_rules(config: str, batch_norm: bool) -> tuple[tuple[str, str], ...]:
    """torchvision keeps the convs in one ``features`` Sequential: walk Table 1 to find each index."""
    rules = []
    index = 0
    for block, widths in enumerate(CONFIGS[config], start=1):
        for layer in range(1, len(widths) + 1):
            rules.append((rf"^features\.{index}\.", f"conv{block}_{layer}.conv."))
            if batch_norm:
                rules.append((rf"^features\.{index + 1}\.", f"conv{block}_{layer}.bn."))
            index += 3 if batch_norm else 2  # conv, (bn,) relu
        index += 1  # the max-pool
    # classifier: Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear
    return (*rules, (r"^classifier\.0\.", "head.fc6."), (r"^classifier\.3\.", "head.fc7."),
            (r"^classifier\.6\.", "head.fc."))


_PAPER = ("K. Simonyan, A. Zisserman (2015). Very Deep Convolutional Networks for Large-Scale Image "
          "Recognition. ICLR 2015, arXiv:1409.1556")
_DIFFERENCES = ("AdaptiveAvgPool2d(7) before fc6 (torchvision): identity at 224, lets any input >= 32 run, where "
                "the paper converts the FC layers to convolutions for dense evaluation (Sec. 3.2). Initialisation "
                "is torchvision's, not the paper's staged one. No configuration A-LRN or C (1x1 convs).")
_BN_DIFFERENCES = (" Batch norm after every conv (Ioffe & Szegedy 2015) is not in the paper; the conv bias is "
                   "kept before it (redundant, +2 C per layer) to match torchvision's weights.")

for _name, _config, _bn, _params, _macs, _source in _VARIANTS:
    MODELS.register(
        ModelCard(
            name=_name,
            paper=_PAPER,
            input_size=(3, 224, 224),
            reference=Counts(params=_params, macs=_macs, source=_source),
            follows=f"paper Table 1 configuration {_config}; layout and counts of torchvision 0.29.1 {_name}",
            differences=_DIFFERENCES + (_BN_DIFFERENCES if _bn else ""),
            min_input_size=MIN_INPUT_SIZE,
            family="vgg",
            tags=("imagenet", "plain") + (("batch_norm",) if _bn else ()),
            converters={"torchvision": Converter(_torchvision_rules(_config, _bn))},
        ),
        partial(vgg, _config, _bn, name=_name),
        spec=partial(vgg_spec, _config, _bn, name=_name),
    )
