"""Classifier heads: global average pooling + dropout + linear, and the papers' auxiliary classifiers."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.blocks._validate import check_positive, check_probability


class ClassifierHead(nn.Module):
    """Global average pooling -> flatten -> dropout -> linear (Lin et al. 2014, NIN; GoogLeNet Sec. 5).

    Replacing flatten + fully connected layers by global average pooling makes the head
    ``C * num_classes + num_classes`` parameters whatever the spatial size (GoogLeNet: 1024 x 1000,
    not 7 x 7 x 1024 x 1000). MACs: ``C * num_classes`` (the pooling is counted as an "other" op).
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        check_positive(in_channels, "in_channels")
        check_positive(num_classes, "num_classes")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.dropout = nn.Dropout(check_probability(dropout, "dropout"))
        self.fc = nn.Linear(in_channels, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.flatten(self.pool(x))))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the final linear layer for ``num_classes`` outputs (fine-tuning)."""
        self.fc = nn.Linear(self.in_channels, check_positive(num_classes, "num_classes"),
                            bias=self.fc.bias is not None)
        self.num_classes = num_classes
