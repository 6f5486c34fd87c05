"""CIFAR-10 networks for cnnlab's experiments: the classic papers' design claims at 2-core-CPU scale.

Small layouts by cnnlab, not papers' networks: one option flips the one design choice a paper studies, all else
fixed. ``cifar_convnet`` (VGG-style): factorized convolutions (arXiv:1512.00567, Sec. 3.1-3.2), GAP vs FC head
(GoogLeNet Sec. 5; NIN Sec. 3.2). ``cifar_inception`` (GoogLeNet-style): 1x1 reductions (arXiv:1409.4842, Sec. 4),
an aux classifier (Sec. 5), residual Inception modules with scaling (arXiv:1602.07261, Sec. 3). The pre-act CIFAR
ResNets 20..56 sit in ``resnet.py``. Card counts are measured; tests/models/test_labnets.py derives them by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.inception import InceptionV1Widths, MultiBranch, ResidualMultiBranch
from cnnlab.models.build import build, build_unit
from cnnlab.models.googlenet import inception
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    AuxSpec,
    ConvDefaults,
    HeadSpec,
    LayerSpec,
    MultiBranchSpec,
    NetworkSpec,
    Unit,
    branch,
    conv,
    max_pool,
    min_input_size,
    multi_branch,
    stage,
)
from cnnlab.registry import MODELS, Counts, ModelCard

SOURCE = "measured by cnnlab (no paper count: a CIFAR-scale network for cnnlab's experiments)"
GOOGLENET = 'Szegedy et al. 2015, "Going Deeper with Convolutions", CVPR, arXiv:1409.4842'

# ---------------------------------------------------------------------------------------------- cifar_convnet
CONVS = ("5x5", "3x3", "3x3_linear", "asymmetric")
HEADS = ("gap", "fc")
WIDTHS = (32, 64, 128)  # stages on the 32x32, 16x16 and 8x8 grids


def studied_layer(channels: int, conv_kind: str) -> Unit:
    """The C -> C unit with a 5x5 field that ``conv_kind`` picks; its conv weights: 25 C^2, 18 C^2 or 12 C^2."""
    c = channels
    if conv_kind == "5x5":
        return conv(c, 5)
    if conv_kind == "3x3":  # Sec. 3.1: two 3x3 cover the 5x5 field with 18/25 of the weights (-28%)
        return LayerSpec("conv_stack", c, 5)
    if conv_kind == "3x3_linear":  # Fig. 2's control: BN kept, no ReLU between the factors (76.2% vs 77.2% with it)
        return branch(conv(c, 3, options=ConvDefaults(act=False)), conv(c, 3))
    if conv_kind == "asymmetric":  # Sec. 3.2: each 3x3 as 3x1 then 1x3, 6/9 of its weights (-33%)
        return branch(LayerSpec("conv_asymmetric", c, 3), LayerSpec("conv_asymmetric", c, 3))
    raise ValueError(f"conv must be one of {CONVS}, got {conv_kind!r}")


def studied_conv(channels: int, conv: str) -> nn.Module:
    """The studied layer (``studied_layer``) as a module."""
    return build_unit(studied_layer(channels, conv), channels, {})


def cifar_convnet_spec(num_classes: int = 10, conv: str = "5x5", head: str = "gap",
                       widths: Sequence[int] = WIDTHS, in_channels: int = 3) -> NetworkSpec:
    """Stem 3x3, per width a stage (3x3 transition, studied conv), 2x2 max-pools between; GAP or VGG's FC head.

    ``head="fc"``: 2x2 max-pool ``pool3``, flatten 4x4xC, FC 512, ReLU, dropout 0.5, linear.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS} (global average pooling or VGG's FC layers), got {head!r}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ValueError(f"widths must be a non-empty list of positive ints (one per stage), got {widths!r}")
    widths = tuple(check_positive(w, "widths") for w in widths)
    # the ``conv`` option shadows the layer function: LayerSpec("conv", width, 3) is conv(width, 3)
    stages = [stage("stem", LayerSpec("conv", widths[0], 3))]  # 32x32xC1
    for i, width in enumerate(widths, start=1):
        if i > 1:
            stages.append(stage(f"pool{i - 1}", max_pool(2, 2)))
        stages.append(stage(f"stage{i}", LayerSpec("conv", width, 3), studied_layer(width, conv),
                            names=("transition", "conv")))
    if head == "fc":  # FCHead's adaptive 4x4 pool is the identity on the 4x4 map a 32x32 input leaves
        stages.append(stage(f"pool{len(widths)}", max_pool(2, 2)))
    classifier = HeadSpec("fc_stack", 0.5, (512,), pool_size=4) if head == "fc" else HeadSpec("pool_fc")
    return NetworkSpec("cifar_convnet", tuple(stages), classifier, num_classes, in_channels, init="he")


def build_cifar_convnet(num_classes: int = 10, conv: str = "5x5", head: str = "gap",
                        widths: Sequence[int] = WIDTHS, in_channels: int = 3) -> Network:
    """``cifar_convnet_spec``'s network; ``conv`` picks the studied layer, ``head`` "gap" or "fc"."""
    return build(cifar_convnet_spec(num_classes, conv, head, widths, in_channels))


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


def naive_module(w: InceptionV1Widths) -> MultiBranchSpec:
    """GoogLeNet's module without the 1x1 reductions (Sec. 4, Fig. 2a): 3x3 and 5x5 on the input itself.

    Output widths and the pool projection are kept, so only the reductions differ from ``googlenet.inception``.
    """
    return multi_branch(conv(w.b1, 1), conv(w.b3, 3), conv(w.b5, 5), (max_pool(3, 1, 1), conv(w.pool_proj, 1)))


def naive_inception(in_channels: int, w: InceptionV1Widths) -> MultiBranch:
    """``naive_module`` as a module (BN convs)."""
    return build_unit(naive_module(w), in_channels, {})  # type: ignore[return-value]


def ResidualBranches(module: MultiBranch, scale: float = 1.0) -> ResidualMultiBranch:  # noqa: N802 (was a class)
    """``module``'s branches made residual the Inception-ResNet way: ``relu(shortcut(x) + scale * expand(cat))``.

    Szegedy et al. 2017, Sec. 3 and Fig. 20, as ``ResidualMultiBranch(projection=True)``: a linear 1x1 expansion
    (bias) to the module's own depth D, and a shortcut that is the identity when the input has D channels, else a
    1x1 projection + BN (He et al. 2015, option B). The state dict is the module's plus ``expand`` and ``shortcut``.
    """
    branches = [(getattr(module, f"branch{i}"), 0) for i in range(module.num_branches)]
    branches[0] = (branches[0][0], module.out_channels)  # only the total depth matters to the expansion
    return ResidualMultiBranch(module.in_channels, branches, scale, projection=True)


def cifar_inception_spec(num_classes: int = 10, reduce: bool = True, aux: bool = False, residual: bool = False,
                         residual_scale: float = 1.0, dropout_aux: float = 0.7, in_channels: int = 3) -> NetworkSpec:
    """Stem 3x3 64 at 32x32, 3x3/2 max-pool, Inception 3a, 3b, 3x3/2 max-pool, 4a, 4b, GAP + linear (BN convs).

    ``reduce=False`` drops the 1x1 reductions; ``aux=True`` adds GoogLeNet's aux classifier on 4a scaled to this
    net (5x5/3 avg-pool -> 2x2, 1x1 conv 64, FC 512, dropout 0.7, FC), returned in train mode as ``ModelOutput``;
    ``residual=True`` makes every module residual with ``residual_scale`` (``ResidualBranches``).
    """
    for value, name in ((reduce, "reduce"), (aux, "aux"), (residual, "residual")):
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false, got {value!r}")
    if not residual and residual_scale != 1.0:
        raise ValueError("residual_scale applies to residual modules only; pass residual=True with it")
    number = isinstance(residual_scale, (int, float)) and not isinstance(residual_scale, bool)
    if not (number and 0 <= residual_scale < math.inf):
        raise ValueError(f"residual_scale must be a finite number >= 0 (the paper: 0.1-0.3), got {residual_scale!r}")
    stages = [stage("stem", conv(64, 3)), stage("pool1", max_pool(3, 2, 1))]  # 32x32x64, 16x16x64
    for name, w in INCEPTION_TABLE:
        if w is None:
            stages.append(stage(name, max_pool(3, 2, 1)))
            continue
        module = inception(w.b1, w.b3_reduce, w.b3, w.b5_reduce, w.b5, w.pool_proj) if reduce else naive_module(w)
        if residual:
            module = MultiBranchSpec(module.branches, True, residual_scale, projection=True)
        stages.append(stage(name, module))
    heads = (AuxSpec("googlenet", AUX_AFTER, dropout_aux, norm=True, conv_channels=64, hidden=512, pool_size=2),)
    # padded 3x3/2 pools map 1x1 to 1x1: the main path runs on any input; the aux head needs AUX_MIN_INPUT
    return NetworkSpec("cifar_inception", tuple(stages), HeadSpec("pool_fc"), num_classes, in_channels,
                       heads if aux else (), init="he")


def build_cifar_inception(num_classes: int = 10, reduce: bool = True, aux: bool = False, residual: bool = False,
                          residual_scale: float = 1.0, dropout_aux: float = 0.7, in_channels: int = 3) -> Network:
    """``cifar_inception_spec``'s network; the options flip its 1x1 reductions, aux head and residual form."""
    return build(cifar_inception_spec(num_classes, reduce, aux, residual, residual_scale, dropout_aux, in_channels))


# the aux head's 5x5/3 average pool needs the 8x8 grid (input / 4) to be at least 5x5: 17x17 in train mode
AUX_MIN_INPUT = min_input_size(cifar_inception_spec(aux=True), with_aux=True)


# ---------------------------------------------------------------------------------------------- the cards
def _register(name: str, builder, spec, paper: str, counts: tuple[int, int], variants: dict, follows: str,
              differences: str) -> None:
    MODELS.register(ModelCard(
        name=name, paper=paper, input_size=(3, 32, 32), num_classes=10, reference=Counts(*counts, SOURCE),
        follows=follows, differences=differences, min_input_size=min_input_size(spec()), family="labnets",
        variants={k: Counts(p, m, SOURCE, opts, note) for k, (opts, p, m, note) in variants.items()},
        tags=("cifar", "experiment")), builder, spec=spec)


_register(
    "cifar_convnet", build_cifar_convnet, cifar_convnet_spec,
    'Szegedy, Vanhoucke, Ioffe, Shlens & Wojna 2016, "Rethinking the Inception Architecture for Computer Vision", '
    "CVPR, arXiv:1512.00567, Sec. 3.1 (5x5 as two 3x3; Fig. 2: ReLU vs linear between them) and Sec. 3.2 (3x1 + "
    f"1x3); head: {GOOGLENET}, Sec. 5, and Lin, Chen & Yan 2014, Network In Network, arXiv:1312.4400, Sec. 3.2",
    (642_090, 98_403_584), {
        "conv_3x3": ({"conv": "3x3"}, 492_010, 76_383_488, ""),
        "conv_3x3_linear": ({"conv": "3x3_linear"}, 492_010, 76_383_488, "as conv_3x3: only a ReLU goes"),
        "conv_asymmetric": ({"conv": "asymmetric"}, 363_882, 57_509_120, ""),
        "head_fc": ({"head": "fc"}, 1_695_018, 99_456_000, "needs inputs >= 8x8 (a third 2x2 max-pool)"),
    },
    follows="cnnlab's VGG-style layout (Simonyan & Zisserman 2015, arXiv:1409.1556): 3x3 stem 32, three stages "
            "(32/16/8 grids, widths 32/64/128) of a 3x3 transition conv and the studied conv, 2x2 max-pools, BN",
    differences="not a paper's network: each stage's studied C -> C layer (5x5 field) has 25 C^2 conv weights "
                "(5x5), 18 C^2 (3x3, 3x3_linear) or 12 C^2 (asymmetric), plus 2 C of BN per conv; head='fc' "
                "adds pool3 and VGG's FC head (fc6 2048 -> 512) and needs inputs >= 8x8 (gap: >= 4x4)")
_register(
    "cifar_inception", build_cifar_inception, cifar_inception_spec,
    f"{GOOGLENET}, Sec. 4 (1x1 reductions) and Sec. 5 (auxiliary classifier); Szegedy, Ioffe, Vanhoucke & Alemi "
    "2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning, AAAI, "
    "arXiv:1602.07261, Sec. 3 and Fig. 20 (residual Inception, scaled residuals)",
    (347_250, 49_396_224), {
        "no_reduce": ({"reduce": False}, 1_239_082, 146_344_448, ""),
        "aux": ({"aux": True}, 500_476, 49_396_224, "MACs of the main path: the aux head runs in train mode only"),
        "residual": ({"residual": True}, 654_786, 90_618_368, "+307,536 params: expansions, projections"),
        "residual_scale_0.2": ({"residual": True, "residual_scale": 0.2}, 654_786, 90_618_368,
                               "as residual: the scale is a constant"),
    },
    follows="cnnlab's GoogLeNet-style layout: 3x3 stem 64 at 32x32, 3x3/2 max-pool, Inception 3a, 3b (16x16), "
            "3x3/2 max-pool, 4a, 4b (8x8) with Table 1's widths halved and BN, GAP + linear",
    differences="not a paper's network. reduce=False keeps the pool projection and every output width. aux=True: "
                "one aux head (4a) scaled to this net (1x1 conv 64, FC 512), train mode needs inputs >= 17x17. "
                "residual=True adds per module a 1x1 expansion (D*D + D) and a 1x1 + BN projection shortcut where "
                "depth changes (3a, 3b, 4a; 4b: identity): +307,536 params, +41,222,144 MACs, nothing else")
