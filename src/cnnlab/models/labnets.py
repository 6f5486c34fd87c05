"""CIFAR-10 networks for cnnlab's experiments: the classic papers' design claims at 2-core-CPU scale.

Small layouts by cnnlab, not papers' networks: one option flips the one design choice a paper studies, all else
fixed. ``cifar_convnet`` (VGG-style): factorized convolutions (arXiv:1512.00567, Sec. 3.1-3.2), GAP vs FC head
(GoogLeNet Sec. 5; NIN Sec. 3.2). ``cifar_inception`` (GoogLeNet-style): 1x1 reductions (arXiv:1409.4842, Sec. 4),
an aux classifier (Sec. 5), residual Inception modules with scaling (arXiv:1602.07261, Sec. 3). The pre-act CIFAR
ResNets 20..56 sit in ``resnet.py``. Card counts are measured; tests/models/test_labnets.py derives them by hand.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.blocks import AsymmetricConv, ClassifierHead, ConvNormAct, StackedConv
from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.heads import GoogLeNetAux
from cnnlab.blocks.inception import InceptionV1, InceptionV1Widths, MultiBranch
from cnnlab.blocks.residual import make_shortcut
from cnnlab.models.network import Network
from cnnlab.models.resnet import init_weights
from cnnlab.models.vgg import FCHead
from cnnlab.registry import MODELS, Counts, ModelCard

SOURCE = "measured by cnnlab (no paper count: a CIFAR-scale network for cnnlab's experiments)"
GOOGLENET = 'Szegedy et al. 2015, "Going Deeper with Convolutions", CVPR, arXiv:1409.4842'

# ---------------------------------------------------------------------------------------------- cifar_convnet
CONVS = ("5x5", "3x3", "3x3_linear", "asymmetric")
HEADS = ("gap", "fc")
WIDTHS = (32, 64, 128)  # stages on the 32x32, 16x16 and 8x8 grids


def studied_conv(channels: int, conv: str) -> nn.Module:
    """The C -> C layer with a 5x5 field that ``conv`` picks; its conv weights: 25 C^2, 18 C^2 or 12 C^2."""
    c = channels
    if conv == "5x5":
        return ConvNormAct(c, c, 5)
    if conv == "3x3":  # Sec. 3.1: two 3x3 cover the 5x5 field with 18/25 of the weights (-28%)
        return StackedConv(c, c, 5)
    if conv == "3x3_linear":  # Fig. 2's control: BN kept, no ReLU between the factors (76.2% vs 77.2% with it)
        return nn.Sequential(ConvNormAct(c, c, 3, act=None), ConvNormAct(c, c, 3))
    if conv == "asymmetric":  # Sec. 3.2: each 3x3 as 3x1 then 1x3, 6/9 of its weights (-33%)
        return nn.Sequential(AsymmetricConv(c, c, 3), AsymmetricConv(c, c, 3))
    raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")


def build_cifar_convnet(num_classes: int = 10, conv: str = "5x5", head: str = "gap",
                        widths: Sequence[int] = WIDTHS, in_channels: int = 3) -> Network:
    """Stem 3x3, per width a stage (3x3 transition, studied conv), 2x2 max-pools between; GAP or VGG's FC head.

    ``head="fc"``: 2x2 max-pool ``pool3``, flatten 4x4xC, FC 512, ReLU, dropout 0.5, linear.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS} (global average pooling or VGG's FC layers), got {head!r}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"widths must be a non-empty list of positive ints (one per stage), got {widths!r}")
    widths = tuple(check_positive(w, "widths") for w in widths)
    stages: list[tuple[str, nn.Module]] = [("stem", ConvNormAct(in_channels, widths[0], 3))]  # 32x32xC1
    prev = widths[0]
    for i, width in enumerate(widths, start=1):
        if i > 1:
            stages.append((f"pool{i - 1}", nn.MaxPool2d(2)))
        stages.append((f"stage{i}", nn.Sequential(OrderedDict(transition=ConvNormAct(prev, width, 3),
                                                              conv=studied_conv(width, conv)))))
        prev = width
    if head == "fc":  # FCHead's adaptive 4x4 pool is the identity on the 4x4 map a 32x32 input leaves
        stages.append((f"pool{len(widths)}", nn.MaxPool2d(2)))
        classifier: nn.Module = FCHead(prev, num_classes, pool_size=4, hidden=(512,), dropout=0.5)
    else:
        classifier = ClassifierHead(prev, num_classes)
    pools = len(widths) - 1 + (head == "fc")  # unpadded 2x2 pools: 2^pools pixels leave a 1x1 map
    net = Network(stages, classifier, in_channels=in_channels, min_input_size=2 ** pools, name="cifar_convnet")
    init_weights(net)
    return net


# ---------------------------------------------------------------------------------------------- cifar_inception
# GoogLeNet's Table 1 rows 3a-4b, every width halved: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_TABLE: tuple[tuple[str, InceptionV1Widths | None], ...] = (
    ("inception3a", InceptionV1Widths(32, 48, 64, 8, 16, 16)),     # 16x16x128
    ("inception3b", InceptionV1Widths(64, 64, 96, 16, 48, 32)),    # 16x16x240
    ("pool2", None),                                               # 8x8x240
    ("inception4a", InceptionV1Widths(96, 48, 104, 8, 24, 32)),    # 8x8x256
    ("inception4b", InceptionV1Widths(80, 56, 112, 12, 32, 32)),   # 8x8x256
)
AUX_AFTER = "inception4a"  # GoogLeNet Sec. 5: on top of (4a); its second head (4d) has no row here
# the aux head's 5x5/3 average pool needs the 8x8 grid (input / 4) to be at least 5x5: 17x17 in train mode
AUX_MIN_INPUT = 17


def naive_inception(in_channels: int, w: InceptionV1Widths) -> MultiBranch:
    """GoogLeNet's module without the 1x1 reductions (Sec. 4, Fig. 2a): 3x3 and 5x5 on the input itself.

    Output widths and the pool projection are kept, so only the reductions differ from ``InceptionV1``.
    """
    c, module = in_channels, MultiBranch(in_channels)
    module.add_branch(ConvNormAct(c, w.b1, 1), w.b1)
    module.add_branch(ConvNormAct(c, w.b3, 3), w.b3)
    module.add_branch(ConvNormAct(c, w.b5, 5), w.b5)
    module.add_branch(nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvNormAct(c, w.pool_proj, 1)),
                      w.pool_proj)
    return module


class ResidualBranches(MultiBranch):
    """A multi-branch module made residual the Inception-ResNet way: ``relu(shortcut(x) + scale * expand(cat))``.

    Szegedy et al. 2017, Sec. 3 and Fig. 20: the concatenated branches go through a linear 1x1 "filter-expansion"
    conv (bias, no BN, no ReLU) to the module's own depth D, are scaled by ``scale`` and added to the shortcut:
    the identity when the input has D channels, else a 1x1 projection + BN (He et al. 2015, option B). It takes
    over the module's branches, so its state dict is the module's plus ``expand`` and ``shortcut``.
    Extra params: ``D*D + D`` (+ ``C*D + 2*D`` with a projection); extra MACs: ``H*W*D*D`` (+ ``H*W*C*D``).
    """

    def __init__(self, module: MultiBranch, scale: float = 1.0) -> None:
        super().__init__(module.in_channels)
        for i in range(module.num_branches):
            self.add_branch(getattr(module, f"branch{i}"), 0)
        self.out_channels = depth = module.out_channels
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 <= scale < float("inf"):
            raise ValueError(f"residual_scale must be a finite number >= 0 (the paper: 0.1-0.3), got {scale!r}")
        self.scale = float(scale)
        self.expand = nn.Conv2d(depth, depth, 1)
        self.shortcut = make_shortcut("B", module.in_channels, depth, 1)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.shortcut(x) + self.scale * self.expand(super().forward(x)))


def build_cifar_inception(num_classes: int = 10, reduce: bool = True, aux: bool = False, residual: bool = False,
                          residual_scale: float = 1.0, dropout_aux: float = 0.7, in_channels: int = 3) -> Network:
    """Stem 3x3 64 at 32x32, 3x3/2 max-pool, Inception 3a, 3b, 3x3/2 max-pool, 4a, 4b, GAP + linear (BN convs).

    ``reduce=False`` drops the 1x1 reductions; ``aux=True`` adds GoogLeNet's aux classifier on 4a scaled to this
    net (5x5/3 avg-pool -> 2x2, 1x1 conv 64, FC 512, dropout 0.7, FC), returned in train mode as ``ModelOutput``;
    ``residual=True`` wraps every module in ``ResidualBranches`` with ``residual_scale``.
    """
    for value, name in ((reduce, "reduce"), (aux, "aux"), (residual, "residual")):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    if not residual and residual_scale != 1.0:
        raise ValueError("residual_scale applies to residual modules only; pass residual=True with it")
    stages: list[tuple[str, nn.Module]] = [
        ("stem", ConvNormAct(in_channels, 64, 3)),               # 32x32x64
        ("pool1", nn.MaxPool2d(3, stride=2, padding=1)),         # 16x16x64
    ]
    channels, aux_heads = 64, {}
    for name, widths in INCEPTION_TABLE:
        if widths is None:
            stages.append((name, nn.MaxPool2d(3, stride=2, padding=1)))
            continue
        module = InceptionV1(channels, widths, norm=True) if reduce else naive_inception(channels, widths)
        stages.append((name, ResidualBranches(module, residual_scale) if residual else module))
        channels = widths.out_channels
        if aux and name == AUX_AFTER:
            aux_heads[name] = GoogLeNetAux(channels, num_classes, dropout_aux, norm=True, norm_eps=1e-5,
                                           conv_channels=64, hidden=512, pool_size=2)
    # padded 3x3/2 pools map 1x1 to 1x1: the main path runs on any input; the aux head needs AUX_MIN_INPUT
    net = Network(stages, ClassifierHead(channels, num_classes), aux_heads, in_channels, 1, name="cifar_inception",
                  aux_min_input_size=AUX_MIN_INPUT if aux else None)
    init_weights(net)
    return net


# ---------------------------------------------------------------------------------------------- the cards
def _register(name: str, builder, paper: str, counts: tuple[int, int], variants: dict, min_input_size: int,
              follows: str, differences: str) -> None:
    MODELS.register(ModelCard(
        name=name, paper=paper, input_size=(3, 32, 32), num_classes=10, reference=Counts(*counts, SOURCE),
        follows=follows, differences=differences, min_input_size=min_input_size, family="labnets",
        variants={k: Counts(p, m, SOURCE, opts, note) for k, (opts, p, m, note) in variants.items()},
        tags=("cifar", "experiment")), builder)


_register(
    "cifar_convnet", build_cifar_convnet,
    'Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016, "Rethinking the Inception Architecture for Computer Vision", '
    "CVPR, arXiv:1512.00567, Sec. 3.1 (5x5 as two 3x3; Fig. 2: ReLU vs linear between them) and Sec. 3.2 (3x1 + "
    f"1x3); head: {GOOGLENET}, Sec. 5, and Lin, Chen & Yan 2014, Network In Network, arXiv:1312.4400, Sec. 3.2",
    (642_090, 98_403_584), {
        "conv_3x3": ({"conv": "3x3"}, 492_010, 76_383_488, ""),
        "conv_3x3_linear": ({"conv": "3x3_linear"}, 492_010, 76_383_488, "as conv_3x3: only a ReLU goes"),
        "conv_asymmetric": ({"conv": "asymmetric"}, 363_882, 57_509_120, ""),
        "head_fc": ({"head": "fc"}, 1_695_018, 99_456_000, "needs inputs >= 8x8 (a third 2x2 max-pool)"),
    }, 4,
    follows="cnnlab's VGG-style layout (Simonyan & Zisserman 2015, arXiv:1409.1556): 3x3 stem 32, three stages "
            "(32/16/8 grids, widths 32/64/128) of a 3x3 transition conv and the studied conv, 2x2 max-pools, BN",
    differences="not a paper's network: each stage's studied C -> C layer (5x5 field) has 25 C^2 conv weights "
                "(5x5), 18 C^2 (3x3, 3x3_linear) or 12 C^2 (asymmetric), plus 2 C of BN per conv; head='fc' "
                "adds pool3 and VGG's FC head (fc6 2048 -> 512) and needs inputs >= 8x8 (gap: >= 4x4)")
_register(
    "cifar_inception", build_cifar_inception,
    f"{GOOGLENET}, Sec. 4 (1x1 reductions) and Sec. 5 (auxiliary classifier); Szegedy, Ioffe, Vanhoucke & Alemi "
    "2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning, AAAI, "
    "arXiv:1602.07261, Sec. 3 and Fig. 20 (residual Inception, scaled residuals)",
    (347_250, 49_396_224), {
        "no_reduce": ({"reduce": False}, 1_239_082, 146_344_448, ""),
        "aux": ({"aux": True}, 500_476, 49_396_224, "MACs of the main path: the aux head runs in train mode only"),
        "residual": ({"residual": True}, 654_786, 90_618_368, "+307,536 params: expansions, projections"),
        "residual_scale_0.2": ({"residual": True, "residual_scale": 0.2}, 654_786, 90_618_368,
                               "as residual: the scale is a constant"),
    }, 1,
    follows="cnnlab's GoogLeNet-style layout: 3x3 stem 64 at 32x32, 3x3/2 max-pool, Inception 3a, 3b (16x16), "
            "3x3/2 max-pool, 4a, 4b (8x8) with Table 1's widths halved and BN, GAP + linear",
    differences="not a paper's network. reduce=False keeps the pool projection and every output width. aux=True: "
                "one aux head (4a) scaled to this net (1x1 conv 64, FC 512), train mode needs inputs >= 17x17. "
                "residual=True adds per module a 1x1 expansion (D*D + D) and a 1x1 + BN projection shortcut where "
                "depth changes (3a, 3b, 4a; 4b: identity): +307,536 params, +41,222,144 MACs, nothing else")
