"""Inception-v4: Szegedy, Ioffe, Vanhoucke & Alemi 2017, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning" (AAAI), arXiv:1602.07261.

The paper's Fig. 9 as a table: stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B,
3 x Inception-C, average pool, dropout (keep 0.8), linear. Built as timm 1.0.31 ``inception_v4``
(TF-slim's layout and BN eps 0.001), so timm weights load.
"""

from __future__ import annotations

from cnnlab.blocks.inception import (
    INCEPTION_V4_A,
    INCEPTION_V4_B,
    INCEPTION_V4_C,
    INCEPTION_V4_REDUCTION_A,
    INCEPTION_V4_REDUCTION_B,
    inception_v4_stem,
)
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import ConvDefaults, HeadSpec, NetworkSpec, min_input_size, stage
from cnnlab.registry import MODELS, Converter, Counts, ModelCard


def inception_v4_spec(num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3) -> NetworkSpec:
    """Inception-v4 (Fig. 9) as a spec; one row per module, TF-slim's stage names."""
    names, stem = zip(*inception_v4_stem())
    stages = (
        stage("stem", *stem, names=names),                                             # Fig. 3: 35x35x384
        *(stage(f"Mixed_5{s}", INCEPTION_V4_A.spec()) for s in "bcde"),                # 35x35x384
        stage("Mixed_6a", INCEPTION_V4_REDUCTION_A.spec()),                            # 17x17x1024
        # Fig. 5's Inception-B is Inception-v3's 17x17 layout with v4's widths, average pools without padding
        *(stage(f"Mixed_6{s}", INCEPTION_V4_B.spec(count_include_pad=False)) for s in "bcdefgh"), # 17x17x1024
        stage("Mixed_7a", INCEPTION_V4_REDUCTION_B.spec()),                            # 8x8x1536
        *(stage(f"Mixed_7{s}", INCEPTION_V4_C.spec()) for s in "bcd"),                 # 8x8x1536
    )
    # TF-slim / timm batch norm epsilon
    return NetworkSpec("inception_v4", stages, HeadSpec("pool_fc", dropout), num_classes, in_channels,
                       conv=ConvDefaults(norm_eps=1e-3))


def build_inception_v4(num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3) -> Network:
    """Inception-v4 (Fig. 9); ``dropout`` 0.2 is the paper's keep probability 0.8 (timm defaults to 0)."""
    return build(inception_v4_spec(num_classes, dropout, in_channels))


MIN_INPUT = min_input_size(inception_v4_spec())  # 75, from the spec: the 8x8 grid must be at least 1x1


def _timm_rules() -> tuple[tuple[str, str], ...]:
    """timm's ``features.<i>`` -> cnnlab's stage names; its Inception-C branch names -> branch<i>.<layer>."""
    stem = [("0", "stem.conv2d_1a"), ("1", "stem.conv2d_2a"), ("2", "stem.conv2d_2b"),
            ("3.conv", "stem.mixed_3a.branch1"), ("4", "stem.mixed_4a"), ("5.conv", "stem.mixed_5a.branch0")]
    rules = [(rf"^features\.{src}\.", f"{dst}.") for src, dst in stem]
    c_branches = [("branch1_0", "branch1.0"), ("branch1_1a", "branch1.1.conv_1xn"),
                  ("branch1_1b", "branch1.1.conv_nx1"), ("branch2_0", "branch2.0"), ("branch2_1", "branch2.1"),
                  ("branch2_2", "branch2.2"), ("branch2_3a", "branch2.3.conv_1xn"),
                  ("branch2_3b", "branch2.3.conv_nx1")]
    for index, stage_spec in enumerate(inception_v4_spec().stages[1:], start=6):  # timm's features 0-5: the stem
        if stage_spec.name.startswith("Mixed_7") and stage_spec.name != "Mixed_7a":  # the Inception-C modules
            rules += [(rf"^features\.{index}\.{src}\.", f"{stage_spec.name}.{dst}.") for src, dst in c_branches]
        rules.append((rf"^features\.{index}\.", f"{stage_spec.name}."))
    return (*rules, (r"^last_linear\.", "head.fc."))


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
    converters={"timm": Converter(_timm_rules())},
), build_inception_v4, spec=inception_v4_spec)
