"""Building blocks of the classic CNN designs, one file per family of ideas: convolutions, the fire module,
classifier heads, the Inception family (GoogLeNet, Inception-v3/v4, Inception-ResNet) and its auxiliary heads,
residual units (ResNet v1/v2, shortcut options) and highway layers."""

from cnnlab.blocks.conv import (
    AsymmetricConv,
    ConvNormAct,
    ReducedConv,
    StackedConv,
    make_activation,
    same_padding,
)
from cnnlab.blocks.fire import Fire
from cnnlab.blocks.heads import ClassifierHead, GoogLeNetAux, InceptionV3Aux
from cnnlab.blocks.highway import HighwayConv, HighwayLinear
from cnnlab.blocks.inception import (
    InceptionResNetA,
    InceptionResNetAWidths,
    InceptionResNetB,
    InceptionResNetBWidths,
    InceptionResNetC,
    InceptionResNetCWidths,
    InceptionResNetReductionB,
    InceptionResNetReductionBWidths,
    InceptionResNetV1Stem,
    InceptionV1,
    InceptionV1Widths,
    InceptionV3A,
    InceptionV3AWidths,
    InceptionV3B,
    InceptionV3BWidths,
    InceptionV3C,
    InceptionV3CWidths,
    InceptionV4A,
    InceptionV4AWidths,
    InceptionV4C,
    InceptionV4CWidths,
    InceptionV4Stem,
    MultiBranch,
    ReductionA,
    ReductionAWidths,
    ReductionB,
    ReductionBWidths,
)
from cnnlab.blocks.residual import BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck, ZeroPadShortcut

__all__ = ["AsymmetricConv", "BasicBlock", "Bottleneck", "ClassifierHead", "ConvNormAct", "Fire",
           "GoogLeNetAux", "HighwayConv", "HighwayLinear", "InceptionResNetA", "InceptionResNetAWidths",
           "InceptionResNetB", "InceptionResNetBWidths", "InceptionResNetC", "InceptionResNetCWidths",
           "InceptionResNetReductionB", "InceptionResNetReductionBWidths", "InceptionResNetV1Stem",
           "InceptionV1", "InceptionV1Widths", "InceptionV3A", "InceptionV3AWidths", "InceptionV3Aux",
           "InceptionV3B", "InceptionV3BWidths", "InceptionV3C", "InceptionV3CWidths", "InceptionV4A",
           "InceptionV4AWidths", "InceptionV4C", "InceptionV4CWidths", "InceptionV4Stem", "MultiBranch",
           "PreActBasicBlock", "PreActBottleneck", "ReducedConv", "ReductionA", "ReductionAWidths",
           "ReductionB", "ReductionBWidths", "StackedConv", "ZeroPadShortcut", "make_activation",
           "same_padding"]
