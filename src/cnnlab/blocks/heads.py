"""Classifier heads: global average pooling + dropout + linear, and the papers' auxiliary classifiers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive, check_probability
from cnnlab.blocks.conv import ConvNormAct


class _LinearClassifier(nn.Module):
    """A head whose last layer is the linear classifier ``fc``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = check_positive(in_channels, "in_channels")
        self.num_classes = check_positive(num_classes, "num_classes")

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer ``fc`` for ``num_classes`` outputs (fine-tuning); the rest is kept."""
        self.fc = nn.Linear(self.fc.in_features, check_positive(num_classes, "num_classes"),
                            bias=self.fc.bias is not None)
        self.num_classes = num_classes


class ClassifierHead(_LinearClassifier):
    """Global average pooling -> flatten -> dropout -> linear (Lin et al. 2014, NIN; GoogLeNet Sec. 5).

    Replacing flatten + fully connected layers by global average pooling makes the head
    ``C * num_classes + num_classes`` parameters whatever the spatial size (GoogLeNet: 1024 x 1000,
    not 7 x 7 x 1024 x 1000). MACs: ``C * num_classes`` (the pooling is counted as an "other" op).
    ``pool="max"`` pools by the maximum instead; ``scale`` multiplies the logits by a constant (airbench,
    arXiv:2404.00498: global max-pool, no bias, logits x 1/9), counted as an elementwise op, not a MAC.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0, bias: bool = True,
                 pool: str = "avg", scale: float = 1.0) -> None:
        super().__init__(in_channels, num_classes)
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max' (global pooling before the linear layer), got {pool!r}")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
            raise ValueError(f"scale must be a finite number > 0 (the logits' multiplier), got {scale!r}")
        self.pool = nn.AdaptiveAvgPool2d(1) if pool == "avg" else nn.AdaptiveMaxPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.fc = nn.Linear(in_channels, num_classes, bias=bias)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc(self.dropout(self.flatten(self.pool(x))))
        return logits if self.scale == 1.0 else logits * self.scale


class GoogLeNetAux(_LinearClassifier):
    """GoogLeNet's auxiliary classifier: 5x5/3 avg-pool -> 1x1 conv 128 -> FC 1024 -> dropout -> FC.

    Szegedy et al. 2015, Sec. 5: placed on top of Inception (4a) and (4d), 70% dropout, its loss weighted
    by 0.3 in training and discarded at inference. ``pool="paper"`` pools 5x5 stride 3 (14x14 -> 4x4 at a
    224 input) and then adaptively to 4x4, which is the identity at 224 and lets other input sizes reach
    the 2048-wide FC (needs a feature map of at least 5x5); ``pool="adaptive"`` is torchvision's
    adaptive 4x4 pool. ``norm=True`` gives torchvision's BN conv (no bias). ``conv_channels`` (128),
    ``hidden`` (1024) and ``pool_size`` (4, the grid the first FC sees) scale the head to smaller networks.
    Params, ``m = conv_channels``, ``h = hidden``, ``g = pool_size``: ``C*m + e(m) + g*g*m*h + h + h*K + K``
    with ``e(m) = m`` (bias) or ``2m`` (BN); paper: ``C*128 + e(128) + 2048*1024 + 1024 + 1024*K + K``.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7, pool: str = "paper",
                 norm: bool = False, norm_eps: float = 1e-3, conv_channels: int = 128, hidden: int = 1024,
                 pool_size: int = 4) -> None:
        super().__init__(in_channels, num_classes)
        if pool not in ("paper", "adaptive"):
            raise ValueError(f"pool must be 'paper' (5x5/3 average pool) or 'adaptive' (torchvision), got {pool!r}")
        for value, name in ((conv_channels, "conv_channels"), (hidden, "hidden"), (pool_size, "pool_size")):
            check_positive(value, name)
        adaptive = nn.AdaptiveAvgPool2d(pool_size)
        self.pool = nn.Sequential(nn.AvgPool2d(5, stride=3), adaptive) if pool == "paper" else adaptive
        self.conv = ConvNormAct(in_channels, conv_channels, 1, norm=norm, norm_eps=norm_eps)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(conv_channels * pool_size * pool_size, hidden)
        self.act = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.flatten(self.conv(self.pool(x)))
        return self.fc(self.dropout(self.act(self.fc1(x))))


class InceptionV3Aux(_LinearClassifier):
    """Inception-v3's auxiliary classifier on the 17x17 grid: 5x5/3 avg-pool -> 1x1 conv 128 -> 5x5 conv 768
    -> global pool -> FC.

    Szegedy et al. 2016, Sec. 4 and Fig. 8, in torchvision's layout (``InceptionAux``, BN convs, eps 1e-3);
    the paper's "BN-auxiliary" also batch-normalizes the FC layer, which torchvision does not.
    Needs a grid of at least 17x17 (pooled to 5x5 for the unpadded 5x5 conv).
    Params: ``C*128 + 2*128 + 25*128*768 + 2*768 + 768*K + K``.
    """

    def __init__(self, in_channels: int, num_classes: int, norm_eps: float = 1e-3) -> None:
        super().__init__(in_channels, num_classes)
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = ConvNormAct(in_channels, 128, 1, norm_eps=norm_eps)
        self.conv1 = ConvNormAct(128, 768, 5, padding=0, norm_eps=norm_eps)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.global_pool(self.conv1(self.conv0(self.pool(x))))))


class FCHead(nn.Sequential):
    """Pool to a fixed grid -> flatten -> hidden fully connected layers -> classifier ``fc``.

    The fully connected head of AlexNet and VGG. Hidden layers are named from ``fc6`` as in both papers;
    the classifier (the papers' fc8) is ``fc``. Params: ``C*g*g*h6 + h6 + h6*h7 + h7 + h7*K + K`` for
    ``pool_size`` g and ``K`` classes (VGG-16 fc6: 512*7*7*4096 + 4096 = 102,764,544); MACs: the same
    without the biases. ``dropout_first`` puts dropout before each hidden layer (torchvision's AlexNet)
    instead of after its activation (VGG, and AlexNet 2012 Sec. 4.2).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        pool_size: int = 7,
        hidden: Sequence[int] = (4096, 4096),
        dropout: float = 0.5,
        dropout_first: bool = False,
    ) -> None:
        super().__init__()
        check_positive(in_channels, "in_channels")
        check_positive(num_classes, "num_classes")
        check_positive(pool_size, "pool_size")
        check_probability(dropout, "dropout")
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.flatten = nn.Flatten(1)
        width = in_channels * pool_size * pool_size
        for number, out in enumerate(hidden, start=6):
            layers = [(f"fc{number}", nn.Linear(width, check_positive(out, "hidden width"))),
                      (f"act{number}", nn.ReLU(inplace=True))]
            drop = (f"drop{number}", nn.Dropout(dropout))
            for name, module in [drop, *layers] if dropout_first else [*layers, drop]:
                self.add_module(name, module)
            width = out
        self.fc = nn.Linear(width, num_classes)

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier ``fc`` for ``num_classes`` outputs; fc6, fc7 are kept."""
        self.fc = nn.Linear(self.fc.in_features, check_positive(num_classes, "num_classes"))


class ConvClassifierHead(nn.Module):
    """Dropout -> 1x1 convolution to ``num_classes`` (``fc``) -> ReLU -> global average pool -> flatten.

    SqueezeNet's conv10 + avgpool10: the classifier is a 1x1 convolution, named ``fc`` like every zoo
    classifier (a 1x1 convolution is a linear layer applied at each position). Params: ``C*K + K``;
    MACs: ``H*W*C*K`` at the final feature size. The ReLU before pooling follows the paper and torchvision.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.in_channels = check_positive(in_channels, "in_channels")
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.fc = self._classifier(num_classes)
        self.act = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)

    def _classifier(self, num_classes: int) -> nn.Conv2d:
        conv = nn.Conv2d(self.in_channels, check_positive(num_classes, "num_classes"), 1)
        # torchvision 0.29.1: the final convolution starts near zero, N(0, 0.01), unlike the others
        nn.init.normal_(conv.weight, 0.0, 0.01)
        nn.init.zeros_(conv.bias)
        return conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flatten(self.pool(self.act(self.fc(self.dropout(x)))))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the 1x1 classifier convolution for ``num_classes`` outputs."""
        self.fc = self._classifier(num_classes)
