"""Inception modules: GoogLeNet v1, Inception-v3 A/B/C and grid reductions, Inception-v4, Inception-ResNet.

Every module runs parallel branches on one input and concatenates them along channels (torch.cat in
branch order, ``branch0`` first). Branch widths are data: one small frozen dataclass per module type,
with presets for the papers' rows, whose ``spec()`` is the module as a ``MultiBranchSpec``. That is the one
place each module is written: the zoo's specs call it, and the module classes build their branches from it.
Counting convention as in ``cnnlab.blocks.conv``: a conv ``k_h x k_w``
from ``C_in`` to ``C_out`` has ``k_h*k_w*C_in*C_out`` weights, plus ``2*C_out`` with batch norm or
``C_out`` bias without; its MACs are ``H_out*W_out`` times its weights. In the formulas below
``w(k, a, b) = k*a*b + e(b)`` with ``e(b) = 2b`` (norm) or ``b`` (bias, no norm), ``k`` the kernel area.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from cnnlab.blocks._validate import check_positive
from cnnlab.blocks.multibranch import (  # the generic modules stay importable from here
    MultiBranch,
    ResidualMultiBranch,  # noqa: F401
    _convs,
    _frozen_widths,
    _paper_branches,
    _PaperModule,
    _ResidualPaperModule,
    build_sequence,
    pool_proj,
)
from cnnlab.blocks.spec import LayerSpec, MultiBranchSpec, conv, conv_split, max_pool, multi_branch

_H, _V = (1, 7), (7, 1)  # the papers' 1x7 (horizontal) and 7x1 (vertical) kernels, as (height, width)
Stem = tuple[tuple[str, LayerSpec | MultiBranchSpec], ...]  # named layers and modules, in order


# --------------------------------------------------------------------------------------------------------
# GoogLeNet (Inception-v1)


@_frozen_widths
class InceptionV1Widths:
    """One row of GoogLeNet's Table 1: #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj."""

    b1: int
    b3_reduce: int
    b3: int
    b5_reduce: int
    b5: int
    pool_proj: int

    @property
    def out_channels(self) -> int:
        return self.b1 + self.b3 + self.b5 + self.pool_proj

    def spec(self, branch5_kernel: int = 5) -> MultiBranchSpec:
        """The module (Fig. 2b): 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 (``branch5_kernel``) | 3x3 max-pool -> 1x1."""
        k5 = branch5_kernel
        if isinstance(k5, bool) or not isinstance(k5, int) or k5 < 1 or k5 % 2 == 0:
            raise ValueError(f"branch5_kernel must be an odd int (5 as the paper, 3 as torchvision), "
                             f"got {k5!r}")
        return multi_branch(conv(self.b1, 1), _convs((self.b3_reduce, self.b3), (1, 3)),
                            _convs((self.b5_reduce, self.b5), (1, k5)), pool_proj(self.pool_proj, pool="max"))


class InceptionV1(MultiBranch):
    """GoogLeNet's Inception module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3 max-pool->1x1, concatenated.

    Szegedy et al. 2015, "Going Deeper with Convolutions", Fig. 2(b) and Table 1. The paper has biases
    and no batch norm (``norm=False``, the default here); torchvision adds BN (``norm=True``) and uses a
    3x3 conv in the "5x5" branch (``branch5_kernel=3``, pytorch/vision#906, inherited from TF-slim).
    Params, ``C = in_channels``, ``k5 = branch5_kernel**2``: ``w(1,C,b1) + w(1,C,r3) + w(9,r3,b3) +
    w(1,C,r5) + w(k5,r5,b5) + w(1,C,pp)``. MACs: ``H*W`` times the weight part of the same sum.
    """

    def __init__(self, in_channels: int, widths: InceptionV1Widths, branch5_kernel: int = 5, norm: bool = False,
                 **conv_kwargs) -> None:
        conv_kwargs = {"norm": norm, **conv_kwargs}
        super().__init__(in_channels, _paper_branches(InceptionV1Widths, in_channels, widths, conv_kwargs,
                                                      branch5_kernel=branch5_kernel))
        self.widths = widths


# --------------------------------------------------------------------------------------------------------
# Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for Computer Vision")


@_frozen_widths
class InceptionV3AWidths:
    """35x35 module (Fig. 5, 5x5 kept as in the released model): 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | pool->1x1."""

    b1: int
    b5: tuple[int, int]           # (1x1 reduce, 5x5)
    b3dbl: tuple[int, int, int]   # (1x1 reduce, 3x3, 3x3)
    pool_proj: int

    def spec(self, count_include_pad: bool = True) -> MultiBranchSpec:
        """The module; ``count_include_pad``: its average pool counts padding (torchvision) or not (timm)."""
        return multi_branch(conv(self.b1, 1), _convs(self.b5, (1, 5)), _convs(self.b3dbl, (1, 3, 3)),
                            pool_proj(self.pool_proj, count_include_pad))


class InceptionV3A(MultiBranch):
    """Inception-v3's 35x35 module (torchvision ``InceptionA``; also Inception-ResNet-v2's ``Mixed_5b``).

    Szegedy et al. 2016, Fig. 5: the 5x5 of v1 factorized into two 3x3 (Sec. 3.1); the released model keeps
    one 5x5 branch besides the double 3x3. ``pool_count_include_pad`` as torchvision (True) or timm (False).
    Params, ``C = in_channels``: ``w(1,C,b1) + w(1,C,r5) + w(25,r5,b5) + w(1,C,d0) + w(9,d0,d1) +
    w(9,d1,d2) + w(1,C,pp)``. Output depth ``b1 + b5 + d2 + pp``.
    """

    def __init__(self, in_channels: int, widths: InceptionV3AWidths, pool_count_include_pad: bool = True,
                 **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(InceptionV3AWidths, in_channels, widths, conv_kwargs,
                                                      count_include_pad=pool_count_include_pad))
        self.widths = widths


@_frozen_widths
class InceptionV3BWidths:
    """17x17 module (Fig. 6, n = 7): 1x1 | 1x1->1x7->7x1 | 1x1->7x1->1x7->7x1->1x7 | pool->1x1."""

    b1: int
    b7: tuple[int, int, int]                 # (1x1 reduce, 1x7, 7x1)
    b7dbl: tuple[int, int, int, int, int]    # (1x1 reduce, 7x1, 1x7, 7x1, 1x7)
    pool_proj: int

    @classmethod
    def uniform(cls, mid: int, out: int = 192) -> InceptionV3BWidths:
        """torchvision's ``InceptionC(channels_7x7=mid)``: every inner width ``mid``, every output ``out``."""
        return cls(out, (mid, mid, out), (mid, mid, mid, mid, out), out)

    def spec(self, count_include_pad: bool = True) -> MultiBranchSpec:
        """The module; ``count_include_pad``: its average pool counts padding (torchvision) or not (timm)."""
        return multi_branch(conv(self.b1, 1), _convs(self.b7, (1, _H, _V)),
                            _convs(self.b7dbl, (1, _V, _H, _V, _H)),
                            pool_proj(self.pool_proj, count_include_pad))


class InceptionV3B(MultiBranch):
    """Inception-v3's 17x17 module with n x n convolutions factorized into 1 x n and n x 1 (n = 7).

    Szegedy et al. 2016, Fig. 6 and Sec. 3.2 (torchvision ``InceptionC``); with Inception-v4's widths
    (``INCEPTION_V4_B``, ``pool_count_include_pad=False``) it is Inception-v4's Inception-B (2017, Fig. 5).
    Params: ``w(1,C,b1) + w(1,C,r) + w(7,r,a) + w(7,a,o) + w(1,C,r') + w(7,r',a') + w(7,a',b') +
    w(7,b',c') + w(7,c',o') + w(1,C,pp)``. Output depth ``b1 + o + o' + pp``.
    """

    def __init__(self, in_channels: int, widths: InceptionV3BWidths, pool_count_include_pad: bool = True,
                 **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(InceptionV3BWidths, in_channels, widths, conv_kwargs,
                                                      count_include_pad=pool_count_include_pad))
        self.widths = widths


@_frozen_widths
class InceptionV3CWidths:
    """8x8 module (Fig. 7): 1x1 | 1x1->(1x3 || 3x1) | 1x1->3x3->(1x3 || 3x1) | pool->1x1."""

    b1: int
    b3: tuple[int, int]           # (1x1 reduce, width of each of 1x3 and 3x1)
    b3dbl: tuple[int, int, int]   # (1x1 reduce, 3x3, width of each of 1x3 and 3x1)
    pool_proj: int

    def spec(self, count_include_pad: bool = True) -> MultiBranchSpec:
        """The module, its 1x3 and 3x1 side by side (``conv_split``); ``count_include_pad`` as in A and B."""
        (r, o), (r2, m, o2) = self.b3, self.b3dbl
        return multi_branch(conv(self.b1, 1), (conv(r, 1), conv_split(o)),
                            (*_convs((r2, m), (1, 3)), conv_split(o2)),
                            pool_proj(self.pool_proj, count_include_pad))


class InceptionV3C(MultiBranch):
    """Inception-v3's 8x8 module with expanded filter banks: 1x3 and 3x1 side by side, concatenated.

    Szegedy et al. 2016, Fig. 7 (torchvision ``InceptionE``): on the coarsest grid the factorized outputs
    are widened, not chained, to promote high-dimensional representations (Sec. 2, principle 2).
    The split uses ``AsymmetricConv(parallel=True)``. Params: ``w(1,C,b1) + w(1,C,r) + 2*w(3,r,o) +
    w(1,C,r') + w(9,r',m) + 2*w(3,m,o') + w(1,C,pp)``. Output depth ``b1 + 2*o + 2*o' + pp``.
    """

    def __init__(self, in_channels: int, widths: InceptionV3CWidths, pool_count_include_pad: bool = True,
                 **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(InceptionV3CWidths, in_channels, widths, conv_kwargs,
                                                      count_include_pad=pool_count_include_pad))
        self.widths = widths


@_frozen_widths
class ReductionAWidths:
    """Reduction-A's filter counts k, l, m, n (Szegedy et al. 2017, Fig. 7 and Table 1)."""

    k: int
    l: int  # noqa: E741 (the paper's name)
    m: int
    n: int

    def spec(self) -> MultiBranchSpec:
        """3x3/2 (n) | 1x1 (k) -> 3x3 (l) -> 3x3/2 (m) | 3x3/2 max-pool; the stride-2 layers unpadded."""
        return multi_branch(conv(self.n, 3, 2, 0), (conv(self.k, 1), conv(self.l, 3), conv(self.m, 3, 2, 0)),
                            max_pool(3, 2))


class ReductionA(_PaperModule):
    """35x35 -> 17x17 grid reduction: 3x3/2 (n) | 1x1 (k) -> 3x3 (l) -> 3x3/2 (m) | 3x3/2 max-pool.

    Pooling and stride-2 convolutions side by side, concatenated: the grid shrinks without a
    representational bottleneck (Szegedy et al. 2016, Sec. 5, Fig. 10). The same module is Inception-v3's
    ``Mixed_6a`` (torchvision ``InceptionB``: k, l, m, n = 64, 96, 96, 384) and Inception-v4 /
    Inception-ResNet's Reduction-A (2017, Fig. 7; Table 1 gives k, l, m, n per network). Unpadded ("V").
    Params: ``w(9,C,n) + w(1,C,k) + w(9,k,l) + w(9,l,m)``. Output depth ``n + m + C``.
    MACs, input ``H x W``, output ``H' = (H - 3) // 2 + 1``: ``H*W*(C*k + 9*k*l) + H'*W'*9*(C*n + l*m)``.
    """

    widths_type = ReductionAWidths


@_frozen_widths
class ReductionBWidths:
    """17x17 -> 8x8 reduction: (1x1 reduce, 3x3/2) and (1x1 reduce, 1x7, 7x1, 3x3/2)."""

    b3: tuple[int, int]
    b7: tuple[int, int, int, int]

    def spec(self) -> MultiBranchSpec:
        """1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max-pool, the stride-2 layers unpadded ("V")."""
        (r, o), (r2, a, b, o2) = self.b3, self.b7
        return multi_branch((conv(r, 1), conv(o, 3, 2, 0)),
                            (*_convs((r2, a, b), (1, _H, _V)), conv(o2, 3, 2, 0)), max_pool(3, 2))


class ReductionB(_PaperModule):
    """17x17 -> 8x8 grid reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max-pool.

    Inception-v3's ``Mixed_7a`` (torchvision ``InceptionD``; Szegedy et al. 2016, Sec. 5) and, with its
    widths, Inception-v4's Reduction-B (Szegedy et al. 2017, Fig. 8). Unpadded ("V") stride-2 layers.
    Params: ``w(1,C,r) + w(9,r,o) + w(1,C,r') + w(7,r',a) + w(7,a,b) + w(9,b,o')``. Depth ``o + o' + C``.
    MACs: ``H*W*(C*r + C*r' + 7*r'*a + 7*a*b) + H'*W'*9*(r*o + b*o')`` with ``H' = (H - 3) // 2 + 1``.
    """

    widths_type = ReductionBWidths


# torchvision 0.29.1 Inception3 (= the released TF model) rows
INCEPTION_V3_REDUCTION_A = ReductionAWidths(64, 96, 96, 384)       # Mixed_6a (torchvision InceptionB)
INCEPTION_V3_REDUCTION_B = ReductionBWidths((192, 320), (192, 192, 192, 192))  # Mixed_7a (InceptionD)


# --------------------------------------------------------------------------------------------------------
# Inception-v4 (Szegedy, Ioffe, Vanhoucke & Alemi 2017, "Inception-v4, Inception-ResNet and the Impact of
# Residual Connections on Learning", AAAI); widths and branch order as timm 1.0.31 inception_v4 (= TF-slim)


_STEM_CONVS: Stem = (("conv2d_1a", conv(32, 3, 2, 0)), ("conv2d_2a", conv(32, 3, 1, 0)),
                     ("conv2d_2b", conv(64, 3)))  # 149x149x32, 147x147x32, 147x147x64: both stems start so


def inception_v4_stem() -> Stem:
    """Inception-v4's stem (Fig. 3) as named layers and modules, timm's order inside each concatenation."""
    return (*_STEM_CONVS,
            ("mixed_3a", multi_branch(max_pool(3, 2), conv(96, 3, 2, 0))),                     # 73x73x160
            ("mixed_4a", multi_branch((conv(64, 1), conv(96, 3, 1, 0)),
                                      (*_convs((64, 64, 64), (1, _H, _V)), conv(96, 3, 1, 0)))),  # 71x71x192
            ("mixed_5a", multi_branch(conv(192, 3, 2, 0), max_pool(3, 2))))                    # 35x35x384


class InceptionV4Stem(nn.Sequential):
    """Inception-v4's (and Inception-ResNet-v2 paper's) stem: 299x299x3 -> 35x35x384 (2017, Fig. 3).

    3x3/2 32 V, 3x3 32 V, 3x3 64; then three concatenations: [3x3/2 max-pool | 3x3/2 96 V] (160),
    [1x1 64 -> 3x3 96 V | 1x1 64 -> 7x1 64 -> 1x7 64 -> 3x3 96 V] (192), [3x3/2 192 V | 3x3/2 max-pool]
    (384); the order inside each concatenation is timm's. Params, ``C = in_channels``: ``w(9,C,32) +
    w(9,32,32) + w(9,32,64) + w(9,64,96) + 2*w(1,160,64) + 2*w(9,64,96) + 2*w(7,64,64) + w(9,192,192)``.
    MACs: each conv's weights times its output grid (149, 147, 147, 73, 73/71, 35 at a 299 input).
    """

    def __init__(self, in_channels: int = 3, **conv_kwargs) -> None:
        check_positive(in_channels, "in_channels")
        super().__init__(OrderedDict(build_sequence(inception_v4_stem(), in_channels, conv_kwargs)))
        self.in_channels, self.out_channels = in_channels, 384


@_frozen_widths
class InceptionV4AWidths:
    """Inception-v4's 35x35 module (Fig. 4): 1x1 | 1x1->3x3 | 1x1->3x3->3x3 | avg-pool->1x1."""

    b1: int
    b3: tuple[int, int]
    b3dbl: tuple[int, int, int]
    pool_proj: int

    def spec(self, count_include_pad: bool = False) -> MultiBranchSpec:
        """The module; its average pool excludes the padding (timm / TF-slim) unless ``count_include_pad``."""
        return multi_branch(conv(self.b1, 1), _convs(self.b3, (1, 3)), _convs(self.b3dbl, (1, 3, 3)),
                            pool_proj(self.pool_proj, count_include_pad))


class InceptionV4A(MultiBranch):
    """Inception-v4's Inception-A (Szegedy et al. 2017, Fig. 4), 35x35 grid.

    Average pooling excludes the padding (``count_include_pad=False``, as timm / TF-slim).
    Params: ``w(1,C,b1) + w(1,C,r) + w(9,r,o) + w(1,C,d0) + w(9,d0,d1) + w(9,d1,d2) + w(1,C,pp)``.
    Output depth ``b1 + o + d2 + pp`` (384 with the paper's widths).
    """

    def __init__(self, in_channels: int, widths: InceptionV4AWidths, pool_count_include_pad: bool = False,
                 **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(InceptionV4AWidths, in_channels, widths, conv_kwargs,
                                                      count_include_pad=pool_count_include_pad))
        self.widths = widths


@_frozen_widths
class InceptionV4CWidths:
    """Inception-v4's 8x8 module (Fig. 6): 1x1 | 1x1->(1x3 || 3x1) | 1x1->3x1->1x3->(1x3 || 3x1) | pool->1x1."""

    b1: int
    b3: tuple[int, int]                 # (1x1 reduce, width of each of 1x3 and 3x1)
    b3dbl: tuple[int, int, int, int]    # (1x1 reduce, 3x1, 1x3, width of each of 1x3 and 3x1)
    pool_proj: int

    def spec(self, count_include_pad: bool = False) -> MultiBranchSpec:
        """The module; its average pool excludes the padding (timm / TF-slim) unless ``count_include_pad``."""
        (r, o), (r2, a, b, o2) = self.b3, self.b3dbl
        return multi_branch(conv(self.b1, 1), (conv(r, 1), conv_split(o)),
                            (*_convs((r2, a, b), (1, (3, 1), (1, 3))), conv_split(o2)),
                            pool_proj(self.pool_proj, count_include_pad))


class InceptionV4C(MultiBranch):
    """Inception-v4's Inception-C (Szegedy et al. 2017, Fig. 6), 8x8 grid, expanded 1x3 / 3x1 outputs.

    Like Inception-v3's 8x8 module with the inner 3x3 of the second branch factorized into 3x1 -> 1x3
    (the order timm uses). Params: ``w(1,C,b1) + w(1,C,r) + 2*w(3,r,o) + w(1,C,r') + w(3,r',a) + w(3,a,b)
    + 2*w(3,b,o') + w(1,C,pp)``. Output depth ``b1 + 2*o + 2*o' + pp`` (1536 with the paper's widths).
    """

    def __init__(self, in_channels: int, widths: InceptionV4CWidths, pool_count_include_pad: bool = False,
                 **conv_kwargs) -> None:
        super().__init__(in_channels, _paper_branches(InceptionV4CWidths, in_channels, widths, conv_kwargs,
                                                      count_include_pad=pool_count_include_pad))
        self.widths = widths


# Szegedy et al. 2017: Fig. 4-6 and 8, Table 1 (Reduction-A k, l, m, n); B uses InceptionV3B's layout
INCEPTION_V4_A = InceptionV4AWidths(96, (64, 96), (64, 96, 96), 96)
INCEPTION_V4_B = InceptionV3BWidths(384, (192, 224, 256), (192, 192, 224, 224, 256), 128)
INCEPTION_V4_C = InceptionV4CWidths(256, (384, 256), (384, 448, 512, 256), 256)
INCEPTION_V4_REDUCTION_A = ReductionAWidths(192, 224, 256, 384)
INCEPTION_V4_REDUCTION_B = ReductionBWidths((192, 192), (256, 256, 320, 320))


# --------------------------------------------------------------------------------------------------------
# Inception-ResNet (same paper): residual units, Reduction-B, v1's stem; v2's stem is v3's plus a 35x35 module


@_frozen_widths
class InceptionResNetAWidths:
    """35x35 residual unit branches (Fig. 10 v1, Fig. 16 v2): 1x1 | 1x1->3x3 | 1x1->3x3->3x3."""

    b1: int
    b3: tuple[int, int]
    b3dbl: tuple[int, int, int]

    def spec(self, scale: float = 1.0, activate: bool = True) -> MultiBranchSpec:
        """The unit: these branches, ``act(x + scale * expand(concat))`` (``activate=False``: no ReLU)."""
        return multi_branch(conv(self.b1, 1), _convs(self.b3, (1, 3)), _convs(self.b3dbl, (1, 3, 3)),
                            residual=True, scale=scale, activate=activate)


@_frozen_widths
class InceptionResNetBWidths:
    """17x17 residual unit branches (Fig. 11 v1, Fig. 17 v2): 1x1 | 1x1->1x7->7x1."""

    b1: int
    b7: tuple[int, int, int]

    def spec(self, scale: float = 1.0, activate: bool = True) -> MultiBranchSpec:
        """The unit: these branches, ``act(x + scale * expand(concat))`` (``activate=False``: no ReLU)."""
        return multi_branch(conv(self.b1, 1), _convs(self.b7, (1, _H, _V)), residual=True, scale=scale,
                            activate=activate)


@_frozen_widths
class InceptionResNetCWidths:
    """8x8 residual unit branches (Fig. 13 v1, Fig. 19 v2): 1x1 | 1x1->1x3->3x1."""

    b1: int
    b3: tuple[int, int, int]

    def spec(self, scale: float = 1.0, activate: bool = True) -> MultiBranchSpec:
        """The unit: these branches, ``act(x + scale * expand(concat))`` (``activate=False``: no ReLU)."""
        return multi_branch(conv(self.b1, 1), _convs(self.b3, (1, (1, 3), (3, 1))), residual=True,
                            scale=scale, activate=activate)


class InceptionResNetA(_ResidualPaperModule):
    """Inception-ResNet-A: 35x35 Inception branches, 1x1 linear expansion to ``C``, scaled residual add, ReLU.

    Szegedy et al. 2017, Figs. 10 (v1) / 16 (v2), Sec. 3.3: residuals scaled by ``scale`` (0.1-0.3) before
    the addition keep very wide residual Inception nets from dying; ``activate=False`` drops the final ReLU.
    Params: ``w(1,C,b1) + w(1,C,r) + w(9,r,o) + w(1,C,d0) + w(9,d0,d1) + w(9,d1,d2) + (b1+o+d2)*C + C``.
    MACs (all layers keep ``H x W``): ``H*W`` times the weight part of the same sum; likewise for B and C.
    """

    widths_type = InceptionResNetAWidths


class InceptionResNetB(_ResidualPaperModule):
    """Inception-ResNet-B: 17x17 branches 1x1 | 1x1->1x7->7x1, linear 1x1 expansion, scaled add, ReLU.

    Szegedy et al. 2017, Figs. 11 (v1) / 17 (v2). Params: ``w(1,C,b1) + w(1,C,r) + w(7,r,a) + w(7,a,o)
    + (b1+o)*C + C``.
    """

    widths_type = InceptionResNetBWidths


class InceptionResNetC(_ResidualPaperModule):
    """Inception-ResNet-C: 8x8 branches 1x1 | 1x1->1x3->3x1, linear 1x1 expansion, scaled add, ReLU.

    Szegedy et al. 2017, Figs. 13 (v1) / 19 (v2). Params: ``w(1,C,b1) + w(1,C,r) + w(3,r,a) + w(3,a,o)
    + (b1+o)*C + C``.
    """

    widths_type = InceptionResNetCWidths


@_frozen_widths
class InceptionResNetReductionBWidths:
    """Inception-ResNet's Reduction-B (Fig. 12 v1, Fig. 18 v2): three conv branches besides the max-pool."""

    b3a: tuple[int, int]            # 1x1 -> 3x3/2 V
    b3b: tuple[int, int]            # 1x1 -> 3x3/2 V
    b3dbl: tuple[int, int, int]     # 1x1 -> 3x3 -> 3x3/2 V

    def spec(self) -> MultiBranchSpec:
        """1x1 -> 3x3/2 | 1x1 -> 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | 3x3/2 max-pool; stride-2 layers unpadded."""
        (r1, o1), (r2, o2), (r3, m, o3) = self.b3a, self.b3b, self.b3dbl
        return multi_branch((conv(r1, 1), conv(o1, 3, 2, 0)), (conv(r2, 1), conv(o2, 3, 2, 0)),
                            (conv(r3, 1), conv(m, 3), conv(o3, 3, 2, 0)), max_pool(3, 2))


class InceptionResNetReductionB(_PaperModule):
    """17x17 -> 8x8 reduction of Inception-ResNet: 1x1->3x3/2 | 1x1->3x3/2 | 1x1->3x3->3x3/2 | max-pool.

    Szegedy et al. 2017, Figs. 12 / 18 (timm ``Mixed_7a``). Params: ``w(1,C,r1) + w(9,r1,o1) + w(1,C,r2)
    + w(9,r2,o2) + w(1,C,r3) + w(9,r3,m) + w(9,m,o3)``. Output depth ``o1 + o2 + o3 + C``.
    MACs: ``H*W*(C*(r1+r2+r3) + 9*r3*m) + H'*W'*9*(r1*o1 + r2*o2 + m*o3)`` with ``H' = (H - 3) // 2 + 1``.
    """

    widths_type = InceptionResNetReductionBWidths


def inception_resnet_v1_stem() -> Stem:
    """Inception-ResNet-v1's stem (Fig. 14) as named layers."""
    return (*_STEM_CONVS, ("maxpool_3a", max_pool(3, 2)), ("conv2d_3b", conv(80, 1)),    # 73x73x64, 73x73x80
            ("conv2d_4a", conv(192, 3, 1, 0)), ("conv2d_4b", conv(256, 3, 2, 0)))       # 71x71x192, 35x35x256


class InceptionResNetV1Stem(nn.Sequential):
    """Inception-ResNet-v1's stem (Szegedy et al. 2017, Fig. 14): 299x299x3 -> 35x35x256.

    3x3/2 32 V, 3x3 32 V, 3x3 64, 3x3/2 max-pool V, 1x1 80, 3x3 192 V, 3x3/2 256 V.
    Params: ``w(9,C,32) + w(9,32,32) + w(9,32,64) + w(1,64,80) + w(9,80,192) + w(9,192,256)``.
    MACs: each conv's weights times its output grid (149, 147, 147, 73, 71, 35 at a 299 input).
    """

    def __init__(self, in_channels: int = 3, **conv_kwargs) -> None:
        check_positive(in_channels, "in_channels")
        super().__init__(OrderedDict(build_sequence(inception_resnet_v1_stem(), in_channels, conv_kwargs)))
        self.in_channels, self.out_channels = in_channels, 256


# Szegedy et al. 2017, Figs. 10-13 (v1) and 16-19 (v2), Table 1 (Reduction-A k, l, m, n)
INCEPTION_RESNET_V1_A = InceptionResNetAWidths(32, (32, 32), (32, 32, 32))
INCEPTION_RESNET_V1_B = InceptionResNetBWidths(128, (128, 128, 128))
INCEPTION_RESNET_V1_C = InceptionResNetCWidths(192, (192, 192, 192))
INCEPTION_RESNET_V1_REDUCTION_A = ReductionAWidths(192, 192, 256, 384)
INCEPTION_RESNET_V1_REDUCTION_B = InceptionResNetReductionBWidths((256, 384), (256, 256), (256, 256, 256))
INCEPTION_RESNET_V2_A = InceptionResNetAWidths(32, (32, 32), (32, 48, 64))
INCEPTION_RESNET_V2_B = InceptionResNetBWidths(192, (128, 160, 192))
INCEPTION_RESNET_V2_C = InceptionResNetCWidths(192, (192, 224, 256))
INCEPTION_RESNET_V2_REDUCTION_A = ReductionAWidths(256, 256, 384, 384)
INCEPTION_RESNET_V2_REDUCTION_B = InceptionResNetReductionBWidths((256, 384), (256, 288), (256, 288, 320))
