"""Inception-v3: Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016, "Rethinking the Inception Architecture for
Computer Vision" (CVPR), arXiv:1512.00567.

Built in torchvision 0.29.1's layout (``Inception3``, the released TF model; timm 1.0.31 is the same),
BN eps 0.001 as there, so torchvision weights load and outputs match.
"""

from __future__ import annotations

from cnnlab.blocks.inception import (
    INCEPTION_V3_REDUCTION_A,
    INCEPTION_V3_REDUCTION_B,
    InceptionV3AWidths,
    InceptionV3BWidths,
    InceptionV3CWidths,
)
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    AuxSpec,
    ConvDefaults,
    HeadSpec,
    NetworkSpec,
    conv,
    max_pool,
    min_input_size,
    stage,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

_C = InceptionV3CWidths(320, (384, 384), (448, 384, 384), 192).spec()
AUX_AFTER = "Mixed_6e"


def inception_v3_spec(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                      in_channels: int = 3) -> NetworkSpec:
    """Inception-v3 as torchvision's ``Inception3``; the options are ``build_inception_v3``'s."""
    stages = (
        # stem (torchvision 0.29.1)
        stage("Conv2d_1a_3x3", conv(32, 3, 2, 0)),     # 149x149x32
        stage("Conv2d_2a_3x3", conv(32, 3, 1, 0)),     # 147x147x32
        stage("Conv2d_2b_3x3", conv(64, 3, 1, 1)),     # 147x147x64
        stage("maxpool1", max_pool(3, 2)),             # 73x73x64
        stage("Conv2d_3b_1x1", conv(80, 1, 1, 0)),     # 73x73x80
        stage("Conv2d_4a_3x3", conv(192, 3, 1, 0)),    # 71x71x192
        stage("maxpool2", max_pool(3, 2)),             # 35x35x192
        # Table 1's 3 x Inception (Fig. 5), 5 x Inception (Fig. 6) with its reduction, 2 x Inception (Fig. 7)
        # with its reduction; widths as torchvision 0.29.1
        stage("Mixed_5b", InceptionV3AWidths(64, (48, 64), (64, 96, 96), 32).spec()),   # 35x35x256
        stage("Mixed_5c", InceptionV3AWidths(64, (48, 64), (64, 96, 96), 64).spec()),   # 35x35x288
        stage("Mixed_5d", InceptionV3AWidths(64, (48, 64), (64, 96, 96), 64).spec()),   # 35x35x288
        stage("Mixed_6a", INCEPTION_V3_REDUCTION_A.spec()),            # 17x17x768 (torchvision InceptionB)
        stage("Mixed_6b", InceptionV3BWidths.uniform(128).spec()),     # 17x17x768
        stage("Mixed_6c", InceptionV3BWidths.uniform(160).spec()),
        stage("Mixed_6d", InceptionV3BWidths.uniform(160).spec()),
        stage("Mixed_6e", InceptionV3BWidths.uniform(192).spec()),     # aux head here
        stage("Mixed_7a", INCEPTION_V3_REDUCTION_B.spec()),            # 8x8x1280 (torchvision InceptionD)
        stage("Mixed_7b", _C),                                         # 8x8x2048
        stage("Mixed_7c", _C),                                         # 8x8x2048
    )
    aux = (AuxSpec("inception_v3", AUX_AFTER),) if aux_logits else ()
    # torchvision BasicConv2d / TF: BN eps 0.001
    return NetworkSpec("inception_v3", stages, HeadSpec("pool_fc", dropout), num_classes, in_channels, aux,
                       ConvDefaults(norm_eps=1e-3))


def build_inception_v3(num_classes: int = 1000, aux_logits: bool = True, dropout: float = 0.5,
                       in_channels: int = 3) -> Network:
    """Inception-v3 as torchvision's ``Inception3`` (``aux_logits=True`` by default, as torchvision)."""
    return build(inception_v3_spec(num_classes, aux_logits, dropout, in_channels))


# smallest H = W that runs, from the spec: the main path needs the 8x8 grid to be at least 1x1 (torchvision's
# weights meta says 75), in every mode; the aux head, which runs in train mode only, needs a 17x17 grid
# (pooled 5x5/3 to 5x5 for its unpadded 5x5 conv)
MIN_INPUT = min_input_size(inception_v3_spec())  # 75
AUX_MIN_INPUT = min_input_size(inception_v3_spec(), with_aux=True)  # 299


def _v3_rules() -> tuple[tuple[str, str], ...]:
    """torchvision's per-branch names -> cnnlab's branch<i>[.<layer>] names, per module type."""
    per_type = {
        r"Mixed_5[bcd]": [("branch1x1", "branch0"), ("branch5x5_1", "branch1.0"), ("branch5x5_2", "branch1.1"),
                          ("branch3x3dbl_1", "branch2.0"), ("branch3x3dbl_2", "branch2.1"),
                          ("branch3x3dbl_3", "branch2.2"), ("branch_pool", "branch3.1")],
        r"Mixed_6a": [("branch3x3", "branch0"), ("branch3x3dbl_1", "branch1.0"), ("branch3x3dbl_2", "branch1.1"),
                      ("branch3x3dbl_3", "branch1.2")],
        r"Mixed_6[bcde]": [("branch1x1", "branch0"), *((f"branch7x7_{i + 1}", f"branch1.{i}") for i in range(3)),
                           *((f"branch7x7dbl_{i + 1}", f"branch2.{i}") for i in range(5)),
                           ("branch_pool", "branch3.1")],
        r"Mixed_7a": [("branch3x3_1", "branch0.0"), ("branch3x3_2", "branch0.1"),
                      *((f"branch7x7x3_{i + 1}", f"branch1.{i}") for i in range(4))],
        r"Mixed_7[bc]": [("branch1x1", "branch0"), ("branch3x3_1", "branch1.0"), ("branch3x3_2a", "branch1.1.conv_1xn"),
                         ("branch3x3_2b", "branch1.1.conv_nx1"), ("branch3x3dbl_1", "branch2.0"),
                         ("branch3x3dbl_2", "branch2.1"), ("branch3x3dbl_3a", "branch2.2.conv_1xn"),
                         ("branch3x3dbl_3b", "branch2.2.conv_nx1"), ("branch_pool", "branch3.1")],
    }
    rules = [(rf"^({stages})\.{src}\.", rf"\1.{dst}.") for stages, pairs in per_type.items() for src, dst in pairs]
    return (*rules, (r"^AuxLogits\.", f"aux_heads.{AUX_AFTER}."), (r"^fc\.", "head.fc."))


MODELS.register(ModelCard(
    name="inception_v3",
    paper="Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016, Rethinking the Inception Architecture for Computer "
          "Vision (CVPR), arXiv:1512.00567",
    input_size=(3, 299, 299),
    reference=Counts(27_161_264, 5_713_216_096, "torchvision 0.29.1 weights meta num_params (docs/references.md)",
                     {"aux_logits": True}, note="MACs of the main path at 299 (the aux head runs only in training)"),
    follows="torchvision 0.29.1 Inception3 (= timm 1.0.31 inception_v3 = the released TF model)",
    differences=(
        "Stem as released, not the paper's Table 1: 3x3/2 32, 3x3 32, 3x3 pad 64, pool, then a 1x1 conv to 80 and a "
        "3x3 conv to 192 followed by a 3x3/2 max-pool, where Table 1 lists conv 3x3 (80), conv 3x3/2 (192), "
        "conv 3x3 (288) with no pool. The 35x35 modules output 256/288/288 (Table 1: 288) and keep a 5x5 branch. "
        "The aux head's FC is not batch-normalized (the paper's 'BN-auxiliary' is). aux_logits=True by default as "
        "torchvision; train mode returns ModelOutput(logits, (aux,)). Inputs down to 75x75 run in eval mode (as "
        "torchvision); train mode with the aux head needs >= 299x299 (its 5x5/3 pool on the 17x17 grid), "
        "aux_logits=False trains down to 75x75. torchvision's transform_input is built in by "
        "from_torchvision(..., transform_input=True)."),
    variants={"no_aux": Counts(23_834_568, 5_713_216_096, "torchvision 0.29.1 minus AuxLogits (docs/references.md)",
                               {"aux_logits": False})},
    min_input_size=MIN_INPUT,  # the main path's (eval mode); train mode with the aux head: AUX_MIN_INPUT
    family="inception",
    tags=("imagenet", "aux"),
    converters={"torchvision": Converter(_v3_rules())},
), build_inception_v3, spec=inception_v3_spec)
