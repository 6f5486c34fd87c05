"""ResNets: ImageNet v1 (18-152), pre-activation v2 (50-200), CIFAR ResNets and plain nets, pre-act CIFAR nets.

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, arXiv:1512.03385
(ImageNet: Table 1; CIFAR-10: Sec. 4.2, Table 6, Fig. 6). He, Zhang, Ren & Sun, "Identity Mappings in Deep
Residual Networks", ECCV 2016, arXiv:1603.05027 (pre-activation units; CIFAR 110/164/1001, ImageNet 200).
Each network is a ``ResNetSpec`` row below; ``build_resnet`` is the one builder. Counts on the cards are
parameters including BN and MACs of convolutions and the classifier (cnnlab's convention), batch 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from cnnlab.blocks.residual import check_shortcut
from cnnlab.models.build import build, he_init
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    ConvDefaults,
    HeadSpec,
    LayerSpec,
    NetworkSpec,
    ResidualSpec,
    conv,
    max_pool,
    min_input_size,
    stage,
)
from cnnlab.registry import MODELS, Converter, Counts, ModelCard

PAPER_V1 = ('He, Zhang, Ren & Sun 2016, "Deep Residual Learning for Image Recognition", CVPR, '
            'arXiv:1512.03385')
PAPER_V2 = 'He, Zhang, Ren & Sun 2016, "Identity Mappings in Deep Residual Networks", ECCV, arXiv:1603.05027'


@dataclass(frozen=True)
class ResNetSpec:
    """One row of a paper's table: unit type, units per stage, stage output widths, stem, unit form."""

    unit: str  # "basic" or "bottleneck"
    depths: tuple[int, ...]  # residual units per stage; the first unit of every stage but the first has stride 2
    widths: tuple[int, ...]  # output channels of each stage (4 x the bottleneck width for bottlenecks)
    stem: str  # "imagenet": 7x7/2 conv + 3x3/2 max pool; "cifar": one 3x3 conv
    stem_width: int
    preact: bool = False
    shortcut: str | bool = "B"
    stride_in_1x1: bool = False  # bottlenecks: stride on the first 1x1 (paper, Caffe, Torch) or on the 3x3


_IMAGENET_BASIC = (64, 128, 256, 512)
_IMAGENET_BOTTLENECK = (256, 512, 1024, 2048)
_CIFAR = (16, 32, 64)  # He et al. 2015, Sec. 4.2: {16, 32, 64} filters on maps {32, 16, 8}
_CIFAR_BOTTLENECK = (64, 128, 256)  # He et al. 2016, resnet-1k-layers: bottleneck widths {16, 32, 64} x 4

SPECS: dict[str, ResNetSpec] = {
    # He et al. 2015, Table 1: conv2_x .. conv5_x; option B shortcuts (Sec. 3.3, used for 50/101/152)
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2), _IMAGENET_BASIC, "imagenet", 64),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3), _IMAGENET_BASIC, "imagenet", 64),
    "resnet50": ResNetSpec("bottleneck", (3, 4, 6, 3), _IMAGENET_BOTTLENECK, "imagenet", 64),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3), _IMAGENET_BOTTLENECK, "imagenet", 64),
    "resnet152": ResNetSpec("bottleneck", (3, 8, 36, 3), _IMAGENET_BOTTLENECK, "imagenet", 64),
    # He et al. 2016b, Sec. 5 (pre-activation on ImageNet); 200 = (3, 24, 36, 3) as fb.resnet.torch / timm 1.0.31
    "resnetv2_50": ResNetSpec("bottleneck", (3, 4, 6, 3), _IMAGENET_BOTTLENECK, "imagenet", 64, preact=True),
    "resnetv2_101": ResNetSpec("bottleneck", (3, 4, 23, 3), _IMAGENET_BOTTLENECK, "imagenet", 64, preact=True),
    "resnetv2_152": ResNetSpec("bottleneck", (3, 8, 36, 3), _IMAGENET_BOTTLENECK, "imagenet", 64, preact=True),
    "resnetv2_200": ResNetSpec("bottleneck", (3, 24, 36, 3), _IMAGENET_BOTTLENECK, "imagenet", 64, preact=True),
}
# He et al. 2015, Sec. 4.2: 6n + 2 layers, n units per stage, option A shortcuts "in all cases"; plain = same
for _n in (3, 5, 7, 9, 18, 200):
    SPECS[f"resnet{6 * _n + 2}"] = ResNetSpec("basic", (_n,) * 3, _CIFAR, "cifar", 16, shortcut="A")
    if _n <= 18:  # Fig. 6 shows plain-20 .. plain-110
        SPECS[f"plain{6 * _n + 2}"] = ResNetSpec("basic", (_n,) * 3, _CIFAR, "cifar", 16, shortcut=False)
# He et al. 2016b, Table 3 / Sec. 4: pre-act ResNet-110 (basic, n = 18); 164 and 1001 are 9n + 2 bottleneck
# nets (n = 18, 111) whose first unit per stage projects and strides on its first 1x1 (resnet-1k-layers,
# resnet-pre-act.lua). The 110 follows ResNet-110 of the first paper (option A), changing only the unit; so do
# the 20..56 that cnnlab adds for its identity-mappings experiment (the paper trains no pre-act net below 110).
for _n in (3, 5, 7, 9, 18):
    SPECS[f"preact_resnet{6 * _n + 2}"] = ResNetSpec("basic", (_n,) * 3, _CIFAR, "cifar", 16, preact=True,
                                                     shortcut="A")
for _n in (18, 111):
    SPECS[f"preact_resnet{9 * _n + 2}"] = ResNetSpec("bottleneck", (_n,) * 3, _CIFAR_BOTTLENECK, "cifar", 16,
                                                     preact=True, stride_in_1x1=True)

init_weights = he_init  # the ResNets' init ("he" in a spec), kept under its earlier public name


def resnet_spec(spec: ResNetSpec, num_classes: int = 1000, *, name: str = "", shortcut: str | bool | None = None,
                stride_in_1x1: bool | None = None, zero_init_residual: bool = False,
                in_channels: int = 3) -> NetworkSpec:
    """A ``ResNetSpec`` row as a NetworkSpec: stages ``stem``, ``layer1`` .. (``norm`` if pre-act), ``head``.

    The options are ``build_resnet``'s.
    """
    shortcut = check_shortcut(spec.shortcut if shortcut is None else shortcut)
    stride_in_1x1 = spec.stride_in_1x1 if stride_in_1x1 is None else stride_in_1x1
    if stride_in_1x1 and spec.unit != "bottleneck":
        raise ValueError(f"stride_in_1x1 applies to bottleneck units only; {name or 'this net'} uses "
                         f"{spec.unit} units, so leave it False")
    # pre-activation nets leave the stem without BN-ReLU: the first unit's own BN-ReLU follows it
    bare = ConvDefaults(norm=False, bias=False, act=False) if spec.preact else None
    if spec.stem == "cifar":
        stages = [stage("stem", conv(spec.stem_width, 3, options=bare))]
    else:  # torchvision's conv1, bn1, relu, maxpool, as one stage
        stages = [stage("stem", conv(spec.stem_width, 7, 2, options=bare), max_pool(3, 2, 1), names=("", "pool"),
                        layout="merged")]
    unit_kw = {"stride_in_1x1": stride_in_1x1} if spec.unit == "bottleneck" else {}
    for i, (depth, width) in enumerate(zip(spec.depths, spec.widths)):
        units = [ResidualSpec(spec.unit, width, 2 if i > 0 and j == 0 else 1, spec.preact, shortcut, **unit_kw)
                 for j in range(depth)]
        stages.append(stage(f"layer{i + 1}", *units, layout="sequential"))
    if spec.preact:  # the last unit's sum is not normalized yet (He et al. 2016b, Fig. 4e / resnet-1k-layers)
        stages.append(stage("norm", LayerSpec("norm_act")))
    return NetworkSpec(name, tuple(stages), HeadSpec("pool_fc"), num_classes, in_channels,
                       init="he_zero_residual" if zero_init_residual else "he")


def build_resnet(spec: ResNetSpec, num_classes: int = 1000, *, name: str = "", shortcut: str | bool | None = None,
                 stride_in_1x1: bool | None = None, zero_init_residual: bool = False,
                 in_channels: int = 3) -> Network:
    """Turn a ``ResNetSpec`` into a Network with stages ``stem``, ``layer1`` .. (``norm`` if pre-act), ``head``.

    ``shortcut`` overrides the spec's option ("A", "B", "C", False); ``stride_in_1x1`` overrides where a
    bottleneck strides: first 1x1 (the papers) or 3x3 (torchvision / timm); ``zero_init_residual`` starts
    every unit as its shortcut (last BN scale, or last conv for pre-act units, set to zero). Every layer keeps
    H >= 1 for H >= 1 (same padding, ceil(H / 2) per stride 2), so 1x1 is the smallest input.
    """
    return build(resnet_spec(spec, num_classes, name=name, shortcut=shortcut, stride_in_1x1=stride_in_1x1,
                             zero_init_residual=zero_init_residual, in_channels=in_channels))


# ---- the zoo: one card per row; every count and its source: docs/references.md ----
_TV, _TIMM = "torchvision 0.29.1 (docs/references.md)", "timm 1.0.31 (docs/references.md)"
_V1_FOLLOWS = "torchvision 0.29.1 layout (stride on the bottleneck's 3x3, 'ResNet v1.5'); its weights load"
_V1_DIFF = ("paper (Table 1, Caffe models) strides the first 1x1 of a bottleneck: stride_in_1x1=True, "
            "same parameters, fewer MACs (variant 'paper_layout')")
_MEASURED_LAB = "measured by cnnlab (no paper count: a CIFAR-scale network for cnnlab's experiments)"
_CIFAR_DIFF = "none known: 3x3 stem, 3 stages of {16, 32, 64}, option A shortcuts, GAP, 10-way FC (Sec. 4.2)"


# ---- converters: torchvision resnet18..152 and timm resnetv2_50/101/152 state dicts -> cnnlab names ----
_TV_CONVERTER = Converter((
    (r"^conv1\.", "stem.conv."),
    (r"^bn1\.", "stem.bn."),
    (r"^(layer\d\.\d+)\.conv(\d)\.", r"\1.conv\2.conv."),
    (r"^(layer\d\.\d+)\.bn(\d)\.", r"\1.conv\2.bn."),
    (r"\.downsample\.0\.", ".shortcut.conv."),
    (r"\.downsample\.1\.", ".shortcut.bn."),
    (r"^fc\.", "head.fc."),
))

_TIMM_UNIT = {"norm1": "preact.bn", "conv1": "conv1.conv", "norm2": "conv2.bn", "conv2": "conv2.conv",
              "norm3": "conv3.bn", "conv3": "conv3.conv", "downsample.conv": "shortcut.conv"}


def _from_timm_resnetv2(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm names stages 0-based (``stages.0.blocks.1.norm1``) and its classifier is a 1x1 conv."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = re.match(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)\.(\w+)$", key)
        if m:
            key = f"layer{int(m[1]) + 1}.{m[2]}.{_TIMM_UNIT[m[3]]}.{m[4]}"
        elif key.startswith("norm."):
            key = "norm.bn." + key[len("norm."):]
        elif key == "head.fc.weight":
            value = value.flatten(1)  # (classes, C, 1, 1) -> (classes, C)
        out[key] = value
    return out


_TIMM_CONVERTER = Converter(fn=_from_timm_resnetv2)


def _register(name: str, paper: str, counts: Counts, *, follows: str = "", differences: str = "",
              variants: dict[str, Counts] | None = None, tags: tuple[str, ...] = (),
              converters: dict[str, Converter] | None = None) -> None:
    spec = SPECS[name]
    cifar = spec.stem == "cifar"

    def builder(num_classes: int = 10 if cifar else 1000, **options) -> Network:
        return build_resnet(spec, num_classes, name=name, **options)

    def network_spec(num_classes: int = 10 if cifar else 1000, **options) -> NetworkSpec:
        return resnet_spec(spec, num_classes, name=name, **options)

    builder.__doc__ = f"Build {name} (see its ModelCard); options: shortcut, stride_in_1x1, zero_init_residual."
    card = ModelCard(name=name, paper=paper, input_size=(3, 32, 32) if cifar else (3, 224, 224),
                     reference=counts, num_classes=10 if cifar else 1000, follows=follows,
                     differences=differences, variants=variants or {}, min_input_size=min_input_size(network_spec()),
                     family="resnet",
                     tags=("cifar" if cifar else "imagenet", "preact" if spec.preact else "postact", *tags),
                     converters=converters or {})
    MODELS.register(card, builder, spec=network_spec)


# (name, params, MACs at the torchvision layout, MACs with the paper's stride on the first 1x1, paper's G)
for _name, _params, _macs, _paper_macs, _paper_g in (
    ("resnet18", 11_689_512, 1_814_073_344, None, "1.8"),
    ("resnet34", 21_797_672, 3_663_761_408, None, "3.6"),
    ("resnet50", 25_557_032, 4_089_184_256, 3_857_973_248, "3.8"),
    ("resnet101", 44_549_160, 7_801_405_440, 7_570_194_432, "7.6"),
    ("resnet152", 60_192_808, 11_513_626_624, 11_282_415_616, "11.3"),
):
    _variants = {} if _paper_macs is None else {"paper_layout": Counts(
        _params, _paper_macs, f"computed (docs/references.md; paper Table 1: {_paper_g} G multiply-adds)",
        {"stride_in_1x1": True})}
    _register(_name, PAPER_V1, Counts(_params, _macs, f"{_TV}; paper Table 1: {_paper_g} G multiply-adds"),
              follows=_V1_FOLLOWS if _paper_macs else "torchvision 0.29.1 layout; its weights load",
              differences=_V1_DIFF if _paper_macs else "none known (option B shortcuts, as torchvision)",
              variants=_variants, converters={"torchvision": _TV_CONVERTER})

# pre-activation ImageNet nets in timm's resnetv2 layout (stride on the 3x3, projection without BN, final BN-ReLU)
for _name, _params, _macs, _paper_macs, _source in (
    ("resnetv2_50", 25_549_352, 4_089_184_256, 3_857_973_248, _TIMM),
    ("resnetv2_101", 44_541_480, 7_801_405_440, 7_570_194_432, f"{_TIMM} params; MACs measured by cnnlab"),
    ("resnetv2_152", 60_185_128, 11_513_626_624, 11_282_415_616, f"{_TIMM} params; MACs measured by cnnlab"),
    ("resnetv2_200", 64_666_152, 15_007_481_856, 14_776_270_848,
     "pinned by cnnlab (no torchvision/timm count): measured on this build"),
):
    _register(_name, PAPER_V2, Counts(_params, _macs, _source),
              follows="timm 1.0.31 resnetv2 layout" + ("" if _name == "resnetv2_200" else "; its weights load"),
              differences="the paper's Torch code strides the first 1x1: stride_in_1x1=True (variant "
                          "'paper_layout'); the paper reports 200 layers only (ImageNet, Table 5)",
              variants={"paper_layout": Counts(_params, _paper_macs, "measured by cnnlab", {"stride_in_1x1": True})},
              converters={} if _name == "resnetv2_200" else {"timm": _TIMM_CONVERTER})

# CIFAR-10 ResNets and plain nets (He et al. 2015, Sec. 4.2); paper params 0.27 / 0.46 / 0.66 / 0.85 / 1.7 / 19.4 M
for _depth, _params, _macs, _params_b, _macs_b, _paper_m in (
    (20, 269_722, 40_551_040, 272_474, 40_813_184, "0.27M"),
    (32, 464_154, 68_862_592, 466_906, 69_124_736, "0.46M"),
    (44, 658_586, 97_174_144, 661_338, 97_436_288, "0.66M"),
    (56, 853_018, 125_485_696, 855_770, 125_747_840, "0.85M"),
    (110, 1_727_962, 252_887_680, 1_730_714, 253_149_824, "1.7M"),
    (1202, 19_421_274, 2_829_238_912, 19_424_026, 2_829_501_056, "19.4M"),
):
    _register(f"resnet{_depth}", PAPER_V1,
              Counts(_params, _macs, f"computed (docs/references.md); paper Table 6: {_paper_m} params"),
              follows="the paper, Sec. 4.2", differences=_CIFAR_DIFF,
              variants={"option_B": Counts(_params_b, _macs_b, "measured by cnnlab (2 projections + BN)",
                                           {"shortcut": "B"})})
    if _depth <= 110:
        _register(f"plain{_depth}", PAPER_V1,
                  Counts(_params, _macs,
                         f"computed (docs/references.md: same as resnet{_depth}, option A has no weights)"),
                  follows="the paper, Sec. 4.2 / Fig. 6 (no table: curves only)",
                  differences=_CIFAR_DIFF.replace("option A shortcuts", "no shortcuts"), tags=("plain",))

# cnnlab's pre-act 20..56: resnet20..56 with the unit of Fig. 4(e) (same counts as the post-act nets, option A)
_PREACT_SMALL = ("the paper's pre-activation unit (Fig. 4e) and final BN-ReLU on resnet{d} of the first paper "
                 "(Sec. 4.2: 3x3 stem, {{16, 32, 64}}, option A shortcuts)")
for _depth, _params, _macs, _params_b, _macs_b in (
    (20, 269_722, 40_551_040, 272_282, 40_813_184),
    (32, 464_154, 68_862_592, 466_714, 69_124_736),
    (44, 658_586, 97_174_144, 661_146, 97_436_288),
    (56, 853_018, 125_485_696, 855_578, 125_747_840),
):
    _register(f"preact_resnet{_depth}", f"{PAPER_V2}, Sec. 4, Fig. 4(e) (full pre-activation)",
              Counts(_params, _macs, _MEASURED_LAB), follows=_PREACT_SMALL.format(d=_depth),
              differences="not in the paper, which trains pre-activation CIFAR nets of 110 layers and more; "
                          "shortcut='B' projects (variant 'option_B')",
              variants={"option_B": Counts(_params_b, _macs_b, _MEASURED_LAB + "; projections without BN",
                                           {"shortcut": "B"})},
              tags=("experiment",))
_register("preact_resnet110", PAPER_V2,
          Counts(1_727_962, 252_887_680, "computed by cnnlab (docs/references.md); paper: about 1.7M params"),
          follows="ResNet-110 of the first paper (option A) with pre-activation units, as the paper's Table 3",
          differences="the paper does not spell out the 110's shortcut; option A assumed (same params as "
                      "ResNet-110); shortcut='B' projects (variant 'option_B')",
          variants={"option_B": Counts(1_730_522, 253_149_824, "measured by cnnlab (projections without BN)",
                                       {"shortcut": "B"})})
for _depth, _params, _macs, _macs_3x3, _paper_m in ((164, 1_703_258, 244_500_992, 247_646_720, "1.7M"),
                                                    (1001, 10_327_706, 1_487_849_984, 1_490_995_712, "10.2M")):
    _register(f"preact_resnet{_depth}", PAPER_V2,
              Counts(_params, _macs, f"computed (docs/references.md); paper: {_paper_m} params, counted without BN"),
              follows="KaimingHe/resnet-1k-layers resnet-pre-act.lua (stride on the first 1x1, projection "
                      "shortcut with shared BN-ReLU at the first unit of each stage)",
              differences="none known",
              variants={"stride_on_3x3": Counts(_params, _macs_3x3, "measured by cnnlab",
                                                {"stride_in_1x1": False})})
