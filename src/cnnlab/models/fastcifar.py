"""A network for fast CIFAR-10 training: K. Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU",
arXiv:2404.00498 (airbench94; the public code's ``make_net``).

A 2x2 convolution (no padding) whose 24 filters the Trainer sets to a patch-whitening transform of the training
data (``whiten_init``), then three conv groups of widths 64 / 256 / 256. A group is conv 3x3 -> 2x2 max-pool ->
BN -> GELU -> conv 3x3 -> BN -> GELU: the pool comes before the first BN, so that BN and GELU run on a quarter
of the pixels. BatchNorm keeps its scale at 1 (not trained) and its bias trained; eps 1e-12, running-average
momentum 0.4 (airbench's 0.6 in the other convention). The head max-pools globally and multiplies the
logits by 1/9. About 118 M multiply-adds per 32x32 image, 2.0 M parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.models.build import build, build_stage, conv_kwargs_for
from cnnlab.models.network import Network
from cnnlab.models.spec import ConvDefaults, HeadSpec, NetworkSpec, StageSpec, conv, min_input_size, stage
from cnnlab.registry import MODELS, Counts, ModelCard

WIDTHS = (64, 256, 256)  # Sec. 3.1 / the code's hyp['net']['widths']: block1, block2, block3
WHITEN_KERNEL = 2  # a 2x2 patch has 3 * 2 * 2 = 12 dimensions; the layer holds them and their negatives: 24
BN_EPS, BN_MOMENTUM = 1e-12, 0.4  # PyTorch's momentum is 1 - airbench's 0.6
LOGIT_SCALE = 1 / 9
# no conv biases (BN follows), GELU; the whitening conv has a bias and no BN
CONV = ConvDefaults(norm_eps=BN_EPS, act="gelu", norm_momentum=BN_MOMENTUM)
WHITEN = ConvDefaults(norm=False, bias=True, act="gelu")


def group(name: str, width: int) -> StageSpec:
    """conv 3x3 -> max-pool 2 -> BN -> GELU, then conv 3x3 -> BN -> GELU."""
    return stage(name, conv(width, 3, pool=2), conv(width, 3), names=("conv1", "conv2"))


def conv_group(in_channels: int, out_channels: int, train_bn_weight: bool = False) -> nn.Sequential:
    """``group`` as a module; airbench keeps its BN scales at 1 unless ``train_bn_weight``."""
    module = build_stage(group("group", out_channels), in_channels, conv_kwargs_for(CONV))
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.requires_grad_(train_bn_weight)
    return module  # type: ignore[return-value]


def fastcifar_vgg_spec(num_classes: int = 10, widths: Sequence[int] = WIDTHS, in_channels: int = 3,
                       train_bn_weight: bool = False) -> NetworkSpec:
    """The airbench94 network; ``widths`` are the three groups' widths, ``train_bn_weight`` trains BN scales."""
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) != 3:
        raise ValueError(f"widths must be three positive ints (one per conv group), got {widths!r}")
    widths = tuple(check_positive(w, "widths") for w in widths)
    whiten = conv(2 * in_channels * WHITEN_KERNEL ** 2, WHITEN_KERNEL, padding=0, options=WHITEN)  # N x 24 x 31 x 31
    groups = [group(f"group{i}", width) for i, width in enumerate(widths, start=1)]  # 15x15, 7x7, 3x3 after pools
    # global max-pool: airbench's MaxPool2d(3) on the 3x3 map of a 32x32 input; other sizes run too
    head = HeadSpec("pool_fc", global_pool="max", bias=False, scale=LOGIT_SCALE)
    return NetworkSpec("fastcifar_vgg", (stage("whiten", whiten), *groups), head, num_classes, in_channels,
                       conv=CONV, init="zero_conv_bias", train_norm_scale=train_bn_weight)


def build_fastcifar_vgg(num_classes: int = 10, widths: Sequence[int] = WIDTHS, in_channels: int = 3,
                        train_bn_weight: bool = False) -> Network:
    """The airbench94 network; ``widths`` are the three groups' widths, ``train_bn_weight`` trains BN scales."""
    return build(fastcifar_vgg_spec(num_classes, widths, in_channels, train_bn_weight))


MODELS.register(ModelCard(
    name="fastcifar_vgg",
    paper='K. Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", arXiv:2404.00498 (airbench94), '
          "and its public code (github.com/KellerJordan/cifar10-airbench, legacy/airbench94.py, make_net)",
    input_size=(3, 32, 32),
    num_classes=10,
    reference=Counts(1_972_792, 118_147_360,
                     "measured by cnnlab (the paper prints no per-image count; tests/models/test_fastcifar.py "
                     "derives both by hand)"),
    follows="the paper's network: 2x2 whitening conv (24 filters, bias, GELU), conv groups 64 / 256 / 256 of "
            "conv-pool-BN-GELU-conv-BN-GELU, BN scale frozen at 1 (eps 1e-12, momentum 0.4), max-pool, linear "
            "without bias, logits x 1/9",
    differences="AdaptiveMaxPool2d(1) where the code has MaxPool2d(3): the same on the 3x3 map of a 32x32 input, "
                "and it lets any input >= 9x9 run. Convs start from PyTorch's default init (whitening bias 0): "
                "airbench's identity init of each conv's first C_in filters and the whitening filters computed "
                "from the training data are Trainer options (dirac_init, whiten_init, on in the cifar10-94 recipe), "
                "as is freezing the whitening weights. Weights in fp32 (the code keeps fp16 weights, fp32 BN).",
    min_input_size=min_input_size(fastcifar_vgg_spec()),  # 9: the 2x2 conv, then three halving pools leave 1x1
    family="fastcifar",
    tags=("cifar", "plain", "fast-training"),
), build_fastcifar_vgg, spec=fastcifar_vgg_spec)
