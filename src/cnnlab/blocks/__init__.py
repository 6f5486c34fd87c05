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
