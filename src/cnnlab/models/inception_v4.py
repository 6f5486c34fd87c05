"""Inception-v4: Szegedy, Ioffe, Vanhoucke & Alemi 2017, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning" (AAAI), arXiv:1602.07261.

The paper's Fig. 9 as a table: stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B,
3 x Inception-C, average pool, dropout (keep 0.8), linear. Built as timm 1.0.31 ``inception_v4``
(TF-slim's layout and BN eps 0.001), so timm weights load.
"""

from __future__ import annotations

from torch import nn

from cnnlab.blocks import ClassifierHead
from cnnlab.blocks.inception import (
    INCEPTION_V4_A,
    INCEPTION_V4_B,
    INCEPTION_V4_C,
    INCEPTION_V4_REDUCTION_A,
    INCEPTION_V4_REDUCTION_B,
    InceptionV3B,
    InceptionV4A,
    InceptionV4C,
    InceptionV4Stem,
    ReductionA,
    ReductionB,
)
from cnnlab.models.convert import register_converter
from cnnlab.models.network import Network
from cnnlab.registry import MODELS, Counts, ModelCard

# Fig. 9, one row per module, TF-slim's stage names; (block, widths, grid after it)
STAGES: tuple[tuple[str, type[nn.Module], object], ...] = (
    *((f"Mixed_5{s}", InceptionV4A, INCEPTION_V4_A) for s in "bcde"),        # 35x35x384
    ("Mixed_6a", ReductionA, INCEPTION_V4_REDUCTION_A),                      # 17x17x1024
    *((f"Mixed_6{s}", InceptionV3B, INCEPTION_V4_B) for s in "bcdefgh"),     # 17x17x1024
    ("Mixed_7a", ReductionB, INCEPTION_V4_REDUCTION_B),                      # 8x8x1536
    *((f"Mixed_7{s}", InceptionV4C, INCEPTION_V4_C) for s in "bcd"),         # 8x8x1536
)
MIN_INPUT = 75  # smallest H = W that runs (meta-device search, checked in tests): 8x8 grid >= 1x1


def build_inception_v4(num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3) -> Network:
    """Inception-v4 (Fig. 9); ``dropout`` 0.2 is the paper's keep probability 0.8 (timm defaults to 0)."""
    conv = dict(norm_eps=1e-3)  # TF-slim / timm batch norm epsilon
    stem = InceptionV4Stem(in_channels, **conv)
    stages: list[tuple[str, nn.Module]] = [("stem", stem)]
    channels = stem.out_channels
    for name, block, widths in STAGES:
        # the 3x3 average pools of A, B and C exclude the zero padding, as TF-slim / timm
        extra = {} if block in (ReductionA, ReductionB) else {"pool_count_include_pad": False}
        module = block(channels, widths, **extra, **conv)
        stages.append((name, module))
        channels = module.out_channels
    return Network(stages, ClassifierHead(channels, num_classes, dropout), None, in_channels, MIN_INPUT,
                   name="inception_v4")


MODELS.register(ModelCard(
    name="inception_v4",
    paper="Szegedy, Ioffe, Vanhoucke & Alemi 2017, Inception-v4, Inception-ResNet and the Impact of Residual "
          "Connections on Learning (AAAI), arXiv:1602.07261",
    input_size=(3, 299, 299),
    reference=Counts(42_679_816, 12_253_974_624, "timm 1.0.31 inception_v4 (docs/references.md)"),
    follows="timm 1.0.31 inception_v4 (= TF-slim; Cadene's port)",
    differences=(
        "The order of the 1x7 / 7x1 pairs in Inception-B and the stem, and of 3x1 / 1x3 in Inception-C, is timm's "
        "(same parameter count either way). Average pools exclude padding (TF). Dropout 0.2 as the paper's keep "
        "0.8 (timm: 0). No auxiliary classifier (the paper describes none for v4)."),
    min_input_size=MIN_INPUT,
    family="inception",
    tags=("imagenet",),
), build_inception_v4)


def _timm_rules() -> tuple[tuple[str, str], ...]:
    """timm's ``features.<i>`` -> cnnlab's stage names; its Inception-C branch names -> branch<i>.<layer>."""
    stem = [("0", "stem.conv2d_1a"), ("1", "stem.conv2d_2a"), ("2", "stem.conv2d_2b"), ("3.conv", "stem.mixed_3a.branch1"),
            ("4", "stem.mixed_4a"), ("5.conv", "stem.mixed_5a.branch0")]
    rules = [(rf"^features\.{src}\.", f"{dst}.") for src, dst in stem]
    c_branches = [("branch1_0", "branch1.0"), ("branch1_1a", "branch1.1.conv_1xn"), ("branch1_1b", "branch1.1.conv_nx1"),
                  ("branch2_0", "branch2.0"), ("branch2_1", "branch2.1"), ("branch2_2", "branch2.2"),
                  ("branch2_3a", "branch2.3.conv_1xn"), ("branch2_3b", "branch2.3.conv_nx1")]
    for index, (name, block, _) in enumerate(STAGES, start=6):  # timm's features 0-5 are the stem
        if block is InceptionV4C:
            rules += [(rf"^features\.{index}\.{src}\.", f"{name}.{dst}.") for src, dst in c_branches]
        rules.append((rf"^features\.{index}\.", f"{name}."))
    return (*rules, (r"^last_linear\.", "head.fc."))


register_converter("timm", "inception_v4", rules=_timm_rules())
