"""GoogLeNet (Inception-v1): Szegedy et al. 2015, "Going Deeper with Convolutions" (CVPR), arXiv:1409.4842.

The paper's Table 1 as data; ``layout="paper"`` builds it as published (true 5x5 branches, biases, no
batch norm, local response norm after pool1 and conv3, 3x3/2 max-pool before 5a, dropout 40%), and
``layout="torchvision"`` builds torchvision 0.29.1's ``GoogLeNet`` (BN with eps 1e-3, a 3x3 conv in the
"5x5" branch, no LRN, 2x2 pool before 5a, dropout 20%, adaptive-pool aux heads) so its weights load.
"""

from __future__ import annotations

from cnnlab.blocks.inception import InceptionV1Widths
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    AuxSpec,
    ConvDefaults,
    HeadSpec,
    MultiBranchSpec,
    NetworkSpec,
    StageSpec,
    conv,
    lrn,
    max_pool,
    min_input_size,
    stage,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

AUX_AFTER = ("inception4a", "inception4d")  # Sec. 5: aux classifiers on top of (4a) and (4d)
LAYOUTS = ("paper", "torchvision")


def inception(b1: int, b3_reduce: int, b3: int, b5_reduce: int, b5: int, pool_proj: int,
              kernel5: int = 5) -> MultiBranchSpec:
    """A row of Table 1 (Fig. 2b) as ``InceptionV1Widths.spec``: 1x1 | 1x1->3x3 | 1x1->5x5 | max-pool->1x1.

    torchvision's "5x5" branch is a 3x3 (``kernel5=3``, pytorch/vision#906, inherited from TF-slim).
    """
    return InceptionV1Widths(b1, b3_reduce, b3, b5_reduce, b5, pool_proj).spec(kernel5)


def googlenet_spec(num_classes: int = 1000, aux_logits: bool = True, layout: str = "paper",
                   branch5_kernel: int | None = None, dropout: float | None = None, dropout_aux: float = 0.7,
                   in_channels: int = 3) -> NetworkSpec:
    """GoogLeNet as a spec; the options are ``build_googlenet``'s."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    paper = layout == "paper"
    k5 = (5 if paper else 3) if branch5_kernel is None else branch5_kernel  # checked by the rows' spec()

    def row(name: str, *widths: int) -> StageSpec:
        return stage(name, inception(*widths, kernel5=k5))

    def pool(name: str, size: int = 3) -> StageSpec:
        return stage(name, max_pool(size, 2, ceil_mode=True))

    norm = [stage("norm1", lrn(5)), stage("norm2", lrn(5))] if paper else []  # Fig. 3 (sizes as in Caffe)
    stages = (
        stage("conv1", conv(64, 7, 2, 3)),              # 112x112x64
        pool("maxpool1"),                               # 56x56x64
        *norm[:1],
        stage("conv2", conv(64, 1)),                    # Table 1 "convolution 3x3" row: its 3x3 reduce
        stage("conv3", conv(192, 3)),                   # 56x56x192
        *norm[1:],
        pool("maxpool2"),                               # 28x28x192
        # Szegedy et al. 2015, Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
        row("inception3a", 64, 96, 128, 16, 32, 32),    # 28x28x256
        row("inception3b", 128, 128, 192, 32, 96, 64),  # 28x28x480
        pool("maxpool3"),
        row("inception4a", 192, 96, 208, 16, 48, 64),   # 14x14x512
        row("inception4b", 160, 112, 224, 24, 64, 64),  # 14x14x512
        row("inception4c", 128, 128, 256, 24, 64, 64),  # 14x14x512
        row("inception4d", 112, 144, 288, 32, 64, 64),  # 14x14x528
        row("inception4e", 256, 160, 320, 32, 128, 128),  # 14x14x832
        # the paper pools 3x3/2 before 5a as before 4a; torchvision uses 2x2/2 (same 7x7 output at 224)
        pool("maxpool4", 3 if paper else 2),
        row("inception5a", 256, 160, 320, 32, 128, 128),  # 7x7x832
        row("inception5b", 384, 192, 384, 48, 128, 128),  # 7x7x1024
    )
    aux = tuple(AuxSpec("googlenet", after, dropout_aux, "paper" if paper else "adaptive", norm=not paper)
                for after in AUX_AFTER) if aux_logits else ()
    drop = (0.4 if paper else 0.2) if dropout is None else dropout  # Table 1 "dropout (40%)"; torchvision 0.2
    # torchvision's BasicConv2d: BN eps 0.001, no bias; the paper: biases, no BN
    return NetworkSpec("googlenet", stages, HeadSpec("pool_fc", drop), num_classes, in_channels, aux,
                       ConvDefaults(norm=not paper, norm_eps=1e-3))


def build_googlenet(num_classes: int = 1000, aux_logits: bool = True, layout: str = "paper",
                    branch5_kernel: int | None = None, dropout: float | None = None,
                    dropout_aux: float = 0.7, in_channels: int = 3) -> Network:
    """GoogLeNet; ``layout`` picks the paper or torchvision's layout, ``branch5_kernel`` overrides its 5x5 size.

    ``aux_logits=True`` by default, as torchvision builds GoogLeNet without pretrained weights and as the
    paper trains it; train mode then returns ``ModelOutput(logits, (aux_4a, aux_4d))``.
    """
    return build(googlenet_spec(num_classes, aux_logits, layout, branch5_kernel, dropout, dropout_aux, in_channels))


# smallest H = W that runs, per layout, from the spec. Main path (every mode): the paper's 3x3 pool before 5a
# needs a 3x3 map where torchvision's 2x2 pool takes 1x1. Aux heads (train mode only): the paper's 5x5/3 aux
# pool needs the 4a map to be at least 5x5; torchvision's adaptive aux pool takes any size
MIN_INPUT = {layout: min_input_size(googlenet_spec(layout=layout)) for layout in LAYOUTS}  # 31, 15
AUX_MIN_INPUT = {layout: min_input_size(googlenet_spec(layout=layout), with_aux=True) for layout in LAYOUTS}  # 79, 15


def _googlenet_rules() -> tuple[tuple[str, str], ...]:
    """torchvision names -> cnnlab names: aux heads move under aux_heads, fc2 becomes fc, fc becomes head.fc."""
    rules = [(rf"^aux{i}\.fc2\.", f"aux_heads.{after}.fc.") for i, after in enumerate(AUX_AFTER, 1)]
    rules += [(rf"^aux{i}\.", f"aux_heads.{after}.") for i, after in enumerate(AUX_AFTER, 1)]
    # torchvision's Inception branches are named branch1..branch4 with Sequential indices; cnnlab's are
    # branch0..branch3, so only the number shifts
    return (*rules, (r"^fc\.", "head.fc."), *((rf"\.branch{i + 1}\.", f".branch{i}.") for i in range(4)))


_PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions (CVPR), arXiv:1409.4842"
MODELS.register(ModelCard(
    name="googlenet",
    paper=_PAPER,
    input_size=(3, 224, 224),
    # default: the paper's layout with its two aux heads (torchvision also builds aux heads by default
    # without pretrained weights, and the paper trains with them); MACs are the inference path only
    reference=Counts(13_378_280, 1_582_671_872, "computed from the paper's Table 1 (docs/references.md); 6,998,552 "
                     "+ two aux heads of 3,188,840 (4a) and 3,190,888 (4d)", {"aux_logits": True},
                     note="MACs of the main path (aux heads run only in training; they add 8,372,224); paper: 1.5 G "
                          "(Sec. 1)"),
    follows="the paper's Table 1 and Fig. 3 (layout='paper'); torchvision 0.29.1 with layout='torchvision'",
    differences=(
        "Default layout='paper': true 5x5 branches, biases, no BN, LRN after pool1/conv3, 3x3/2 pool before 5a. "
        "The aux heads' 5x5/3 pool is followed by an adaptive 4x4 pool (identity at 224) so other sizes run. "
        "Inputs down to 31x31 run in eval mode; train mode with the paper's aux heads needs >= 79x79 (their 5x5/3 "
        "pool on the 4a map), aux_logits=False trains down to 31x31 (layout='torchvision': 15x15 in every mode). "
        "Train mode returns ModelOutput(logits, (aux1, aux2)) in depth order (4a then 4d); torchvision returns "
        "(logits, aux_logits2, aux_logits1). Use aux weight 0.3 each (Sec. 5), e.g. cnnlab.aux_loss(out, y, 0.3). "
        "layout='torchvision' uses BN, a 3x3 '5x5' branch (pytorch/vision#906), no LRN, a 2x2 pool before 5a and "
        "adaptive-pool aux heads; torchvision's transform_input is built in by "
        "from_torchvision(..., transform_input=True)."),
    variants={
        "paper_no_aux": Counts(6_998_552, 1_582_671_872, "computed from Table 1 (docs/references.md)",
                               {"aux_logits": False}),
        "torchvision": Counts(13_004_888, 1_498_376_192, "torchvision 0.29.1", {"layout": "torchvision"}),
        "torchvision_no_aux": Counts(6_624_904, 1_498_376_192, "torchvision 0.29.1",
                                     {"layout": "torchvision", "aux_logits": False}),
        "torchvision_5x5_no_aux": Counts(7_005_832, 1_582_671_872,
                                         "torchvision 0.29.1 with kernel 5 (docs/references.md)",
                                         {"layout": "torchvision", "branch5_kernel": 5, "aux_logits": False}),
    },
    min_input_size=MIN_INPUT["paper"],  # the main path's (eval mode); train mode with aux heads: AUX_MIN_INPUT
    family="inception",
    tags=("imagenet", "aux"),
    converters={"torchvision": Converter(_googlenet_rules(), options={"layout": "torchvision"})},
), build_googlenet, spec=googlenet_spec)
