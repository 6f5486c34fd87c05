"""Convolutional highway networks for CIFAR-10, at the depths and sizes of Srivastava et al. 2015.

Srivastava, Greff & Schmidhuber, "Training Very Deep Networks", NeurIPS 2015, arXiv:1507.06228: CIFAR-10
highway nets of 19 layers (2.3M parameters, 92.40% accuracy) and 32 layers (1.25M, 90.20%), the rows that
He et al. 2015 quote in their Table 6 (7.54% / 8.80% error; sources in docs/references.md).

What is NOT the paper: its exact per-layer table (in the supplementary material) could not be confirmed here.
The layouts below are cnnlab's: a 3x3 stem, three stages of 3x3 highway layers separated by 2x2 max pooling
and a 3x3 width-changing convolution, global average pooling and a linear classifier, with stage widths
chosen so the parameter count lands near the paper's figure. Their counts are pinned by cnnlab (see the cards).
Layers counted as the papers count them: every convolution or highway layer, plus the classifier.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from torch import nn

from cnnlab.blocks.conv import ConvNormAct
from cnnlab.blocks.heads import ClassifierHead
from cnnlab.blocks.highway import HighwayConv
from cnnlab.models.network import Network
from cnnlab.registry import MODELS, Counts, ModelCard

PAPER = 'Srivastava, Greff & Schmidhuber 2015, "Training Very Deep Networks", NeurIPS, arXiv:1507.06228'


@dataclass(frozen=True)
class HighwaySpec:
    """Stage table: ``(width, highway layers)`` per stage; stages after the first open with pool + conv."""

    stages: tuple[tuple[int, int], ...]
    gate_bias: float  # transform-gate bias at init (negative: carry behaviour); per-depth paper value unconfirmed

    @property
    def depth(self) -> int:
        """Weighted layers: stem + one conv per later stage + highway layers + classifier."""
        return 1 + (len(self.stages) - 1) + sum(n for _, n in self.stages) + 1


SPECS: dict[str, HighwaySpec] = {
    # cnnlab layouts (see the module docstring); gate biases -1 / -2 follow "deeper nets, more negative" (Sec. 2)
    "highway19_cifar": HighwaySpec(((48, 5), (96, 5), (112, 5)), gate_bias=-1.0),
    "highway32_cifar": HighwaySpec(((24, 9), (48, 9), (64, 10)), gate_bias=-2.0),
}


def build_highway(spec: HighwaySpec, num_classes: int = 10, *, name: str = "", gate_bias: float | None = None,
                  in_channels: int = 3) -> Network:
    """Stages ``stem``, ``stage1`` .. ``stageN``, ``head``; ``gate_bias`` overrides the spec's value."""
    bias = spec.gate_bias if gate_bias is None else gate_bias
    width = spec.stages[0][0]
    stages: list[tuple[str, nn.Module]] = [("stem", ConvNormAct(in_channels, width, 3, norm=False))]
    for i, (out, n) in enumerate(spec.stages):
        layers: list[tuple[str, nn.Module]] = []
        if i > 0:  # halve the map (2x2 max pooling, as FitNets / maxout nets), then change the width
            layers += [("pool", nn.MaxPool2d(2)), ("conv", ConvNormAct(width, out, 3, norm=False))]
        layers += [(f"highway{j + 1}", HighwayConv(out, 3, gate_bias=bias)) for j in range(n)]
        stages.append((f"stage{i + 1}", nn.Sequential(OrderedDict(layers))))
        width = out
    # two 2x2 poolings without padding: 4x4 is the smallest input that leaves a 1x1 map
    net = Network(stages, ClassifierHead(width, num_classes), in_channels=in_channels,
                  min_input_size=2 ** (len(spec.stages) - 1), name=name)
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and not m.weight.is_meta:  # He init of weights; biases keep their init
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in net.modules():  # after the loop above, which also zeroes the gate convolutions' biases
        if isinstance(m, HighwayConv) and not m.gate.bias.is_meta:
            m.reset_gate()
    return net


# parameters / MACs measured on this build at 32x32 (pinned by cnnlab); paper figures for comparison
for _name, _params, _macs, _paper in (("highway19_cifar", 2_309_242, 515_064_928, "2.3M"),
                                      ("highway32_cifar", 1_245_866, 243_376_768, "1.25M")):

    def _builder(num_classes: int = 10, _spec: HighwaySpec = SPECS[_name], _n: str = _name, **options) -> Network:
        return build_highway(_spec, num_classes, name=_n, **options)

    MODELS.register(ModelCard(
        name=_name, paper=PAPER, input_size=(3, 32, 32), num_classes=10, family="highway",
        reference=Counts(_params, _macs, f"pinned by cnnlab (measured); paper: {_paper} parameters"),
        follows="the paper's depth and parameter budget; layer table by cnnlab",
        differences="per-layer widths, pooling placement and gate bias are cnnlab's choices: the paper's "
                    "supplementary table is unconfirmed here; no BN, no dropout, ReLU",
        min_input_size=2 ** (len(SPECS[_name].stages) - 1), tags=("cifar", "highway")), _builder)
