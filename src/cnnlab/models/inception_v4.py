"""Inception-v4: Szegedy, Ioffe, Vanhoucke & Alemi 2017, "Inception-v4, Inception-ResNet and the Impact of
Residual Connections on Learning" (AAAI), arXiv:1602.07261.

The paper's Fig. 9 as a table: stem, 4 x Inception-A, Reduction-A, 7 x Inception-B, Reduction-B,
3 x Inception-C, average pool, dropout (keep 0.8), linear. Built as timm 1.0.31 ``inception_v4``
(TF-slim's layout and BN eps 0.001), so timm weights load.
"""

from __future__ import annotations

from cnnlab.models.build import build
from cnnlab.models.inception_v3 import module_b, pool_proj, reduction_a, reduction_b
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    ConvDefaults,
    HeadSpec,
    MultiBranchSpec,
    NetworkSpec,
    StageSpec,
    conv,
    conv_split,
    max_pool,
    min_input_size,
    multi_branch,
    stage,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard


def stem() -> StageSpec:
    """Fig. 3: 299x299x3 -> 35x35x384; the order inside each concatenation is timm's."""
    h, v = (1, 7), (7, 1)
    return stage("stem",
                 conv(32, 3, 2, 0),                                                  # 149x149x32
                 conv(32, 3, 1, 0),                                                  # 147x147x32
                 conv(64, 3),                                                        # 147x147x64
                 multi_branch(max_pool(3, 2), conv(96, 3, 2, 0)),                    # 73x73x160
                 multi_branch((conv(64, 1), conv(96, 3, 1, 0)),
                              (conv(64, 1), conv(64, h), conv(64, v), conv(96, 3, 1, 0))),  # 71x71x192
                 multi_branch(conv(192, 3, 2, 0), max_pool(3, 2)),                   # 35x35x384
                 names=("conv2d_1a", "conv2d_2a", "conv2d_2b", "mixed_3a", "mixed_4a", "mixed_5a"))


def inception_a(b1: int = 96, b3: tuple[int, int] = (64, 96), b3dbl: tuple[int, int, int] = (64, 96, 96),
                pool: int = 96) -> MultiBranchSpec:
    """Inception-A (Fig. 4), 35x35: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | avg-pool (padding excluded) -> 1x1."""
    return multi_branch(conv(b1, 1), (conv(b3[0], 1), conv(b3[1], 3)),
                        (conv(b3dbl[0], 1), conv(b3dbl[1], 3), conv(b3dbl[2], 3)), pool_proj(pool, False))


def inception_c(b1: int = 256, b3: tuple[int, int] = (384, 256),
                b3dbl: tuple[int, int, int, int] = (384, 448, 512, 256), pool: int = 256) -> MultiBranchSpec:
    """Inception-C (Fig. 6), 8x8: 1x1 | 1x1 -> (1x3 || 3x1) | 1x1 -> 3x1 -> 1x3 -> (1x3 || 3x1) | pool -> 1x1."""
    r, a, b, o = b3dbl
    return multi_branch(conv(b1, 1), (conv(b3[0], 1), conv_split(b3[1])),
                        (conv(r, 1), conv(a, (3, 1)), conv(b, (1, 3)), conv_split(o)), pool_proj(pool, False))


# Fig. 5's Inception-B is Inception-v3's 17x17 layout with these widths; Table 1: Reduction-A k, l, m, n
INCEPTION_B = module_b(384, (192, 224, 256), (192, 192, 224, 224, 256), 128, count_include_pad=False)


def inception_v4_spec(num_classes: int = 1000, dropout: float = 0.2, in_channels: int = 3) -> NetworkSpec:
    """Inception-v4 (Fig. 9) as a spec; one row per module, TF-slim's stage names."""
    stages = (
        stem(),
        *(stage(f"Mixed_5{s}", inception_a()) for s in "bcde"),                        # 35x35x384
        stage("Mixed_6a", reduction_a(192, 224, 256, 384)),                            # 17x17x1024
        *(stage(f"Mixed_6{s}", INCEPTION_B) for s in "bcdefgh"),                       # 17x17x1024
        stage("Mixed_7a", reduction_b((192, 192), (256, 256, 320, 320))),              # 8x8x1536
        *(stage(f"Mixed_7{s}", inception_c()) for s in "bcd"),                         # 8x8x1536
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
    stem = [("0", "stem.conv2d_1a"), ("1", "stem.conv2d_2a"), ("2", "stem.conv2d_2b"), ("3.conv", "stem.mixed_3a.branch1"),
            ("4", "stem.mixed_4a"), ("5.conv", "stem.mixed_5a.branch0")]
    rules = [(rf"^features\.{src}\.", f"{dst}.") for src, dst in stem]
    c_branches = [("branch1_0", "branch1.0"), ("branch1_1a", "branch1.1.conv_1xn"), ("branch1_1b", "branch1.1.conv_nx1"),
                  ("branch2_0", "branch2.0"), ("branch2_1", "branch2.1"), ("branch2_2", "branch2.2"),
                  ("branch2_3a", "branch2.3.conv_1xn"), ("branch2_3b", "branch2.3.conv_nx1")]
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
