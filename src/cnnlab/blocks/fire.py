"""The SqueezeNet fire module (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", arXiv:1602.07360, Sec. 3.2 and Fig. 1)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.conv import ConvNormAct


class Fire(nn.Module):
    """Squeeze 1x1 to ``s`` channels, then expand with 1x1 (``e1``) and 3x3 (``e3``) side by side, concatenated.

    The squeeze layer caps the input depth seen by the 3x3 filters (SqueezeNet strategy 2, Sec. 3.1), and
    the 1x1 expand filters replace part of the 3x3 ones (strategy 1). Output: ``e1 + e3`` channels, same H x W.
    ``bypass=True`` adds the input to the output (the paper's "simple bypass", Sec. 6.2, Fig. 2 middle); it
    needs ``in_channels == e1 + e3`` and adds no parameters.
    Params (no norm, with biases, the paper's setting): ``s*(C_in + 1) + e1*(s + 1) + e3*(9*s + 1)``.
    MACs: ``H * W * (C_in*s + s*e1 + 9*s*e3)``.
    """

    def __init__(
        self,
        in_channels: int,
        squeeze_channels: int,
        expand1x1_channels: int,
        expand3x3_channels: int,
        bypass: bool = False,
        norm: bool = False,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (squeeze_channels, "squeeze_channels"),
                            (expand1x1_channels, "expand1x1_channels"), (expand3x3_channels, "expand3x3_channels")):
            check_positive(value, name)
        out_channels = expand1x1_channels + expand3x3_channels
        if bypass and in_channels != out_channels:
            raise ValueError(
                f"a simple bypass adds the input to the output, so in_channels ({in_channels}) must equal "
                f"expand1x1_channels + expand3x3_channels ({out_channels}); pass bypass=False for this module")
        self.in_channels, self.out_channels, self.bypass = in_channels, out_channels, bypass
        # names follow torchvision's Fire (squeeze, expand1x1, expand3x3) so state dicts map one to one
        self.squeeze = ConvNormAct(in_channels, squeeze_channels, 1, norm=norm, **conv_kwargs)
        self.expand1x1 = ConvNormAct(squeeze_channels, expand1x1_channels, 1, norm=norm, **conv_kwargs)
        self.expand3x3 = ConvNormAct(squeeze_channels, expand3x3_channels, 3, norm=norm, **conv_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeezed = self.squeeze(x)
        out = torch.cat([self.expand1x1(squeezed), self.expand3x3(squeezed)], dim=1)
        return out + x if self.bypass else out
