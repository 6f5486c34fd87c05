"""Highway layers: a learned gate mixes a layer's transform with its unchanged input.

Srivastava, Greff & Schmidhuber 2015, "Highway Networks" (arXiv:1505.00387) and "Training Very Deep
Networks" (NeurIPS 2015, arXiv:1507.06228): ``y = H(x) * T(x) + x * (1 - T(x))`` with the transform gate
``T(x) = sigmoid(W_T x + b_T)``. A negative ``b_T`` closes the gates at initialization, so every layer starts
close to the identity ("carry") and very deep stacks still pass signal and gradient.

Gate bias: the papers initialize ``b_T`` negative and deeper nets more negative (values such as -1 to -3 are
quoted in secondary sources; the exact value per depth is unconfirmed, see docs/references.md). The default
here, -1.0, is the mildest of that range; pass ``gate_bias`` to change it.
"""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.blocks._validate import check_odd_kernel, check_positive, pair
from cnnlab.blocks.conv import ActLayer, ConvNormAct, make_activation


def _check_gate_bias(gate_bias: float) -> float:
    if isinstance(gate_bias, bool) or not isinstance(gate_bias, (int, float)):
        raise ValueError(f"gate_bias must be a float (negative values close the gate at init), got {gate_bias!r}")
    return float(gate_bias)


class _Highway(nn.Module):
    """``y = H(x) T(x) + x (1 - T(x))`` from a subclass's ``transform`` (H) and ``gate`` (T before its sigmoid)."""

    def __init__(self, gate_bias: float) -> None:
        super().__init__()
        self.gate_bias = _check_gate_bias(gate_bias)

    def reset_gate(self) -> None:
        """Set the gate bias to ``gate_bias`` (model-wide weight init leaves biases alone, so call it after)."""
        nn.init.constant_(self.gate.bias, self.gate_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = torch.sigmoid(self.gate(x))
        return x + t * (self.transform(x) - x)  # = H(x) T(x) + x (1 - T(x)), one multiply fewer


class HighwayConv(_Highway):
    """Convolutional highway layer: ``H`` = k x k conv (+ bias) + activation, ``T`` = sigmoid(k x k conv + b_T).

    Input and output have the same ``channels`` and size (stride 1, same padding), as the gate mixes the two.
    Params (no norm): ``2 (k^2 C^2 + C)``; with ``norm=True`` the transform has BN instead of a bias:
    ``2 k^2 C^2 + 2 C + C``. MACs: ``2 H W k^2 C^2`` (the transform and the gate convolutions).
    """

    def __init__(self, channels: int, kernel_size: int = 3, gate_bias: float = -1.0, act: ActLayer = "relu",
                 norm: bool = False) -> None:
        check_positive(channels, "channels")
        kernel = pair(kernel_size, "kernel_size")
        check_odd_kernel(kernel)
        super().__init__(gate_bias)
        self.transform = ConvNormAct(channels, channels, kernel, norm=norm, act=act)
        self.gate = nn.Conv2d(channels, channels, kernel, padding=(kernel[0] // 2, kernel[1] // 2), bias=True)
        self.reset_gate()


class HighwayLinear(_Highway):
    """Dense highway layer on ``(N, features)``: ``H`` = linear + activation, ``T`` = sigmoid(linear + b_T).

    Params: ``2 (F^2 + F)``. MACs: ``2 F^2`` per example.
    """

    def __init__(self, features: int, gate_bias: float = -1.0, act: ActLayer = "relu") -> None:
        check_positive(features, "features")
        super().__init__(gate_bias)
        self.transform = nn.Sequential(nn.Linear(features, features), make_activation(act))
        self.gate = nn.Linear(features, features)
        self.reset_gate()
