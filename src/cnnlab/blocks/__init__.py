"""Building blocks of the classic CNN designs, one file per family of ideas."""

from cnnlab.blocks.conv import (
           AsymmetricConv,
           ConvNormAct,
           ReducedConv,
           StackedConv,
           make_activation,
           same_padding,
)
from cnnlab.blocks.fire import Fire
from cnnlab.blocks.heads import ClassifierHead

__all__ = ["AsymmetricConv", "ClassifierHead", "ConvNormAct", "Fire", "ReducedConv", "StackedConv", "make_activation",
           "same_padding"]

# Inception family (GoogLeNet, Inception-v3/v4, Inception-ResNet) and its auxiliary heads
from cnnlab.blocks.heads import GoogLeNetAux, InceptionV3Aux  # noqa: E402
from cnnlab.blocks.inception import (  # noqa: E402
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

__all__ += ["GoogLeNetAux", "InceptionResNetA", "InceptionResNetAWidths", "InceptionResNetB", "InceptionResNetBWidths",
            "InceptionResNetC", "InceptionResNetCWidths", "InceptionResNetReductionB", "InceptionResNetReductionBWidths",
            "InceptionResNetV1Stem", "InceptionV1", "InceptionV1Widths", "InceptionV3A", "InceptionV3AWidths",
            "InceptionV3Aux", "InceptionV3B", "InceptionV3BWidths", "InceptionV3C", "InceptionV3CWidths",
            "InceptionV4A", "InceptionV4AWidths", "InceptionV4C", "InceptionV4CWidths", "InceptionV4Stem",
            "MultiBranch", "ReductionA", "ReductionAWidths", "ReductionB", "ReductionBWidths"]

# Residual family (ResNet v1/v2 units, shortcut options) and highway layers
from cnnlab.blocks.highway import HighwayConv, HighwayLinear  # noqa: E402
from cnnlab.blocks.residual import (  # noqa: E402
           BasicBlock,
           Bottleneck,
           PreActBasicBlock,
           PreActBottleneck,
           ZeroPadShortcut,
)

__all__ += ["BasicBlock", "Bottleneck", "HighwayConv", "HighwayLinear", "PreActBasicBlock", "PreActBottleneck",
            "ZeroPadShortcut"]
