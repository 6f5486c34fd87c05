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

from dataclasses import dataclass
from functools import partial

from cnnlab.models.build import build
from cnnlab.models.network import Network
from cnnlab.models.spec import (
    ConvDefaults,
    HeadSpec,
    HighwayConvSpec,
    NetworkSpec,
    Unit,
    conv,
    max_pool,
    min_input_size,
    stage,
)
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


def highway_spec(spec: HighwaySpec, num_classes: int = 10, *, name: str = "", gate_bias: float | None = None,
                 in_channels: int = 3) -> NetworkSpec:
    """Stages ``stem``, ``stage1`` .. ``stageN``, ``head``; ``gate_bias`` overrides the spec's value. No BN: every
    conv has a bias; He (fan-in) init, biases 0, gates at their bias."""
    layer = HighwayConvSpec(3, spec.gate_bias if gate_bias is None else gate_bias)
    stages = [stage("stem", conv(spec.stages[0][0], 3))]
    for i, (width, n) in enumerate(spec.stages):
        # halve the map (2x2 max pooling, as FitNets / maxout nets), then change the width
        units: list[Unit] = [max_pool(2, 2), conv(width, 3)] if i > 0 else []
        names = ("pool", "conv")[:len(units)] + tuple(f"highway{j + 1}" for j in range(n))
        stages.append(stage(f"stage{i + 1}", *units, *[layer] * n, names=names))
    return NetworkSpec(name, tuple(stages), HeadSpec("pool_fc"), num_classes, in_channels,
                       conv=ConvDefaults(norm=False), init="he_fan_in")


def build_highway(spec: HighwaySpec, num_classes: int = 10, *, name: str = "", gate_bias: float | None = None,
                  in_channels: int = 3) -> Network:
    """Stages ``stem``, ``stage1`` .. ``stageN``, ``head``; ``gate_bias`` overrides the spec's value."""
    return build(highway_spec(spec, num_classes, name=name, gate_bias=gate_bias, in_channels=in_channels))


# parameters / MACs measured on this build at 32x32 (pinned by cnnlab); paper figures for comparison
for _name, _params, _macs, _paper in (("highway19_cifar", 2_309_242, 515_064_928, "2.3M"),
                                      ("highway32_cifar", 1_245_866, 243_376_768, "1.25M")):
    MODELS.register(ModelCard(
        name=_name, paper=PAPER, input_size=(3, 32, 32), num_classes=10, family="highway",
        reference=Counts(_params, _macs, f"pinned by cnnlab (measured); paper: {_paper} parameters"),
        follows="the paper's depth and parameter budget; layer table by cnnlab",
        differences="per-layer widths, pooling placement and gate bias are cnnlab's choices: the paper's "
                    "supplementary table is unconfirmed here; no BN, no dropout, ReLU",
        min_input_size=min_input_size(highway_spec(SPECS[_name])), tags=("cifar", "highway")),
        partial(build_highway, SPECS[_name], name=_name), spec=partial(highway_spec, SPECS[_name], name=_name))
