"""Inception-ResNet-v1 and -v2: Szegedy, Ioffe, Vanhoucke & Alemi 2017, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning" (AAAI), arXiv:1602.07261.

Fig. 15's schema as a table: stem, 5/10 x Inception-ResNet-A, Reduction-A, 10/20 x B, Reduction-B, 5/10 x C,
average pool, dropout (keep 0.8), linear. ``inception_resnet_v1`` follows the paper (Figs. 10-14, Table 1);
``inception_resnet_v2`` follows timm 1.0.31 (the TF-slim release, whose widths differ from the paper's).
"""

from __future__ import annotations

from cnnlab.blocks.inception import (
    INCEPTION_RESNET_V1_A,
    INCEPTION_RESNET_V1_B,
    INCEPTION_RESNET_V1_C,
    INCEPTION_RESNET_V1_REDUCTION_A,
    INCEPTION_RESNET_V1_REDUCTION_B,
    INCEPTION_RESNET_V2_A,
    INCEPTION_RESNET_V2_B,
    INCEPTION_RESNET_V2_C,
    INCEPTION_RESNET_V2_REDUCTION_A,
    INCEPTION_RESNET_V2_REDUCTION_B,
    InceptionV3AWidths,
    inception_resnet_v1_stem,
)
from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import ConvDefaults, HeadSpec, NetworkSpec, conv, max_pool, min_input_size, stage
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

_PAPER = ("Szegedy, Ioffe, Vanhoucke & Alemi 2017, Inception-v4, Inception-ResNet and the Impact of Residual "
          "Connections on Learning (AAAI), arXiv:1602.07261")
# residual scales of the A, B and C units: TF-slim's released Inception-ResNet-v2 (timm 1.0.31); the paper
# only says "between 0.1 and 0.3" (Sec. 3.3), so v1 uses the same values
SCALES = (0.17, 0.10, 0.20)
# repeats of A, B, C (Fig. 15 text / Table 1 setting): v1 5-10-5, v2 10-20-10 (TF-slim: 10-20-9 + a last unit)


def _check_scales(scales: tuple[float, float, float]) -> tuple[float, float, float]:
    if not isinstance(scales, (tuple, list)) or len(scales) != 3:
        raise ValueError(f"scales must be three numbers (A, B, C units), got {scales!r}")
    return tuple(scales)  # type: ignore[return-value]  # each value is checked by its unit


def inception_resnet_v1_spec(num_classes: int = 1000, scales: tuple[float, float, float] = SCALES,
                             dropout: float = 0.2, in_channels: int = 3) -> NetworkSpec:
    """Inception-ResNet-v1 with the paper's widths (Figs. 10-14, Reduction-A k, l, m, n = 192, 192, 256, 384)."""
    a, b, c = _check_scales(scales)
    names, stem = zip(*inception_resnet_v1_stem())
    stages = (
        stage("stem", *stem, names=names),                                               # Fig. 14: 35x35x256
        stage("repeat", INCEPTION_RESNET_V1_A.spec(a), repeat=5),
        stage("mixed_6a", INCEPTION_RESNET_V1_REDUCTION_A.spec()),                       # 17x17x896
        stage("repeat_1", INCEPTION_RESNET_V1_B.spec(b), repeat=10),
        stage("mixed_7a", INCEPTION_RESNET_V1_REDUCTION_B.spec()),                       # 8x8x1792
        stage("repeat_2", INCEPTION_RESNET_V1_C.spec(c), repeat=5),
    )
    # TF batch norm epsilon, as the v2 release
    return NetworkSpec("inception_resnet_v1", stages, HeadSpec("pool_fc", dropout), num_classes, in_channels,
                       conv=ConvDefaults(norm_eps=1e-3))


def inception_resnet_v2_spec(num_classes: int = 1000, scales: tuple[float, float, float] = SCALES,
                             dropout: float = 0.2, in_channels: int = 3) -> NetworkSpec:
    """Inception-ResNet-v2 as released (TF-slim / timm 1.0.31): v3-like stem, 320/1088/2080 widths, 1x1 to 1536."""
    a, b, c = _check_scales(scales)
    stages = (
        # the release's stem: v1's (Fig. 14) up to conv2d_4a (71x71x192), then a max-pool; top-level stages
        *(stage(name, layer) for name, layer in inception_resnet_v1_stem()[:6]),
        stage("maxpool_5a", max_pool(3, 2)),       # 35x35x192
        # an Inception-v3 35x35 module with v2's widths, average pool without padding: 35x35x320
        stage("mixed_5b", InceptionV3AWidths(96, (48, 64), (64, 96, 96), 64).spec(count_include_pad=False)),
        stage("repeat", INCEPTION_RESNET_V2_A.spec(a), repeat=10),
        stage("mixed_6a", INCEPTION_RESNET_V2_REDUCTION_A.spec()),                       # 17x17x1088
        stage("repeat_1", INCEPTION_RESNET_V2_B.spec(b), repeat=20),
        stage("mixed_7a", INCEPTION_RESNET_V2_REDUCTION_B.spec()),                       # 8x8x2080
        stage("repeat_2", INCEPTION_RESNET_V2_C.spec(c), repeat=9),
        # the tenth C unit is unscaled and has no ReLU: the BN-ReLU 1x1 conv to 1536 follows it
        stage("block8", INCEPTION_RESNET_V2_C.spec(1.0, activate=False)),
        stage("conv2d_7b", conv(1536, 1)),                                               # 8x8x1536
    )
    return NetworkSpec("inception_resnet_v2", stages, HeadSpec("pool_fc", dropout), num_classes, in_channels,
                       conv=ConvDefaults(norm_eps=1e-3))


def build_inception_resnet_v1(num_classes: int = 1000, scales: tuple[float, float, float] = SCALES,
                              dropout: float = 0.2, in_channels: int = 3) -> Network:
    """Inception-ResNet-v1 with the paper's widths (Figs. 10-14, Reduction-A k, l, m, n = 192, 192, 256, 384)."""
    return build(inception_resnet_v1_spec(num_classes, scales, dropout, in_channels))


def build_inception_resnet_v2(num_classes: int = 1000, scales: tuple[float, float, float] = SCALES,
                              dropout: float = 0.2, in_channels: int = 3) -> Network:
    """Inception-ResNet-v2 as released (TF-slim / timm 1.0.31): v3-like stem, 320/1088/2080 widths, 1x1 to 1536."""
    return build(inception_resnet_v2_spec(num_classes, scales, dropout, in_channels))


# smallest H = W that runs, from the spec (75 for both versions; each card states its own)
MIN_INPUT = min_input_size(inception_resnet_v1_spec())


MODELS.register(ModelCard(
    name="inception_resnet_v1",
    paper=_PAPER,
    input_size=(3, 299, 299),
    reference=Counts(22_756_328, 6_206_361_696,
                     "measured here (no public count; docs/references.md): pinned cnnlab count",
                     note="paper: cost close to Inception-v3 (5.71 G MACs)"),
    follows="the paper: Fig. 14 stem, Figs. 10, 11, 13 units, Fig. 7 Reduction-A (192, 192, 256, 384), Fig. 12",
    differences=(
        "No reference implementation exists; widths are the paper's figures. Residual scales 0.17 / 0.10 / 0.20 "
        "(A / B / C) as the released v2 (the paper: 0.1-0.3). BN eps 0.001, the 1x1 expansion convs have biases "
        "and no BN (BN only on the traditional layers, Sec. 3.2). Dropout 0.2 (keep 0.8, Fig. 15)."),
    min_input_size=MIN_INPUT,
    family="inception",
    tags=("imagenet", "residual"),
), build_inception_resnet_v1, spec=inception_resnet_v1_spec)

MODELS.register(ModelCard(
    name="inception_resnet_v2",
    paper=_PAPER,
    input_size=(3, 299, 299),
    reference=Counts(55_843_464, 13_155_794_016, "timm 1.0.31 inception_resnet_v2 (docs/references.md)"),
    follows="timm 1.0.31 inception_resnet_v2 (= TF-slim release)",
    differences=(
        "The release differs from the paper: an Inception-v3-like stem plus a 35x35 Inception module (Mixed_5b, "
        "320 channels) instead of Fig. 3's stem (384); trunk widths 320 / 1088 / 2080 instead of 384 / 1154 / 2048; "
        "9 scaled C units plus an unscaled one without ReLU; a 1x1 conv to 1536 before the pool. Residual scales "
        "0.17 / 0.10 / 0.20. Dropout 0.2 (keep 0.8; timm: 0). No auxiliary head (TF-slim's was not ported)."),
    min_input_size=min_input_size(inception_resnet_v2_spec()),
    family="inception",
    tags=("imagenet", "residual"),
    # timm names the 1x1 expansion conv ``conv2d`` and the classifier ``classif``; everything else matches
    converters={"timm": Converter(((r"^((?:repeat(?:_\d)?\.\d+)|block8)\.conv2d\.", r"\1.expand."),
                                   (r"^classif\.", "head.fc.")))},
), build_inception_resnet_v2, spec=inception_resnet_v2_spec)
