"""Inception blocks: shapes, parameter counts against closed forms, gradients, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from _helpers import n_params
from cnnlab.blocks import GoogLeNetAux, InceptionV1, InceptionV1Widths, InceptionV3Aux
from cnnlab.blocks.inception import (
    INCEPTION_RESNET_V1_A,
    INCEPTION_RESNET_V1_B,
    INCEPTION_RESNET_V1_C,
    INCEPTION_RESNET_V1_REDUCTION_B,
    INCEPTION_RESNET_V2_A,
    INCEPTION_RESNET_V2_B,
    INCEPTION_RESNET_V2_C,
    INCEPTION_V4_A,
    INCEPTION_V4_B,
    INCEPTION_V4_C,
    INCEPTION_V4_REDUCTION_A,
    INCEPTION_V4_REDUCTION_B,
    InceptionResNetA,
    InceptionResNetAWidths,
    InceptionResNetB,
    InceptionResNetBWidths,
    InceptionResNetC,
    InceptionResNetReductionB,
    InceptionResNetV1Stem,
    InceptionV3A,
    InceptionV3AWidths,
    InceptionV3B,
    InceptionV3BWidths,
    InceptionV3C,
    InceptionV3CWidths,
    InceptionV4A,
    InceptionV4C,
    InceptionV4Stem,
    ReductionA,
    ReductionAWidths,
    ReductionB,
    ReductionBWidths,
)
from cnnlab.blocks.multibranch import build_multi_branch


def w(k: int, a: int, b: int, norm: bool = True) -> int:
    """Parameters of a conv with kernel area k from a to b channels: BN (2b) or bias (b)."""
    return k * a * b + (2 * b if norm else b)


ROW_3A = InceptionV1Widths(64, 96, 128, 16, 32, 32)  # GoogLeNet Table 1, inception (3a)


# ---------------------------------------------------------------------------------------------- GoogLeNet v1


@pytest.mark.parametrize("size", [1, 7, 28, 33])
def test_inception_v1_shape_and_depth(size: int) -> None:
    block = InceptionV1(192, ROW_3A).eval()
    out = block(torch.randn(2, 192, size, size))
    assert out.shape == (2, 64 + 128 + 32 + 32, size, size)
    assert block.out_channels == ROW_3A.out_channels == 256


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("kernel5", [5, 3])
def test_inception_v1_params_formula(norm: bool, kernel5: int) -> None:
    c, r = 192, ROW_3A
    expected = (w(1, c, r.b1, norm) + w(1, c, r.b3_reduce, norm) + w(9, r.b3_reduce, r.b3, norm)
                + w(1, c, r.b5_reduce, norm) + w(kernel5 ** 2, r.b5_reduce, r.b5, norm) + w(1, c, r.pool_proj, norm))
    block = InceptionV1(c, r, branch5_kernel=kernel5, norm=norm)
    assert n_params(block) == expected
    # the paper's module has biases and no BN; torchvision's has BN and no bias
    assert any(isinstance(m, nn.BatchNorm2d) for m in block.modules()) == norm


def test_inception_v1_concat_order_is_branch_order() -> None:
    block = InceptionV1(8, InceptionV1Widths(1, 2, 3, 2, 4, 5)).eval()
    x = torch.randn(1, 8, 6, 6)
    out = block(x)
    parts = [block.branch0(x), block.branch1(x), block.branch2(x), block.branch3(x)]
    assert torch.equal(out, torch.cat(parts, 1))
    assert [p.shape[1] for p in parts] == [1, 3, 4, 5]


def test_inception_v1_gradient_reaches_input() -> None:
    x = torch.randn(2, 16, 5, 5, requires_grad=True)
    InceptionV1(16, InceptionV1Widths(4, 4, 8, 2, 4, 4), norm=True)(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("field", ["b1", "b3_reduce", "b3", "b5_reduce", "b5", "pool_proj"])
def test_inception_v1_widths_reject_non_positive(field: str) -> None:
    values = dict(b1=1, b3_reduce=1, b3=1, b5_reduce=1, b5=1, pool_proj=1)
    values[field] = 0
    with pytest.raises(ValueError, match=f"InceptionV1Widths.{field}"):
        InceptionV1Widths(**values)


def test_inception_v1_bad_args() -> None:
    with pytest.raises(ValueError, match="branch5_kernel"):
        InceptionV1(8, ROW_3A, branch5_kernel=4)
    with pytest.raises(ValueError, match="in_channels"):
        InceptionV1(0, ROW_3A)
    with pytest.raises(TypeError, match="widths"):
        InceptionV1(8, (64, 96, 128, 16, 32, 32))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- aux heads


@pytest.mark.parametrize("norm", [False, True])
def test_googlenet_aux_params_formula(norm: bool) -> None:
    k = 1000
    head = GoogLeNetAux(512, k, norm=norm)
    assert n_params(head) == w(1, 512, 128, norm) + 2048 * 1024 + 1024 + 1024 * k + k
    assert isinstance(head.fc, nn.Linear) and head.fc.out_features == k


@pytest.mark.parametrize(("pool", "size"), [("paper", 14), ("paper", 19), ("paper", 5), ("adaptive", 14),
                                            ("adaptive", 1)])
def test_googlenet_aux_shapes(pool: str, size: int) -> None:
    head = GoogLeNetAux(528, 7, pool=pool).eval()
    assert head(torch.randn(2, 528, size, size)).shape == (2, 7)


def test_googlenet_aux_scaled_widths() -> None:
    # conv_channels / hidden / pool_size scale the head: cifar_inception's aux on its 8x8x256 map (4a)
    head = GoogLeNetAux(256, 10, norm=True, conv_channels=64, hidden=512, pool_size=2)
    assert n_params(head) == w(1, 256, 64) + 2 * 2 * 64 * 512 + 512 + 512 * 10 + 10
    assert head.eval()(torch.randn(2, 256, 8, 8)).shape == (2, 10)  # 5x5/3 pool: 8x8 -> 2x2, adaptive: identity
    head.reset_classifier(3)
    assert head.fc.in_features == 512 and head.fc.out_features == 3
    for bad in ({"conv_channels": 0}, {"hidden": -1}, {"pool_size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GoogLeNetAux(256, 10, **bad)


def test_googlenet_aux_paper_pool_is_5x5_stride_3_at_224() -> None:
    # at a 224 input the 4a map is 14x14: the 5x5/3 average pool gives 4x4 and the adaptive pool is the identity
    head = GoogLeNetAux(4, 3).eval()
    x = torch.randn(1, 4, 14, 14)
    assert torch.allclose(head.pool(x), nn.functional.avg_pool2d(x, 5, 3), atol=0, rtol=0)


def test_googlenet_aux_reset_and_errors() -> None:
    head = GoogLeNetAux(512, 1000)
    head.reset_classifier(10)
    assert head.fc.out_features == 10 and head.num_classes == 10
    with pytest.raises(ValueError, match="pool"):
        GoogLeNetAux(512, 10, pool="max")
    with pytest.raises(ValueError, match="dropout"):
        GoogLeNetAux(512, 10, dropout=1.5)
    with pytest.raises(ValueError, match="num_classes"):
        head.reset_classifier(0)


def test_inception_v3_aux_params_shape_reset() -> None:
    k = 1000
    head = InceptionV3Aux(768, k).eval()
    assert n_params(head) == w(1, 768, 128) + w(25, 128, 768) + 768 * k + k
    assert head(torch.randn(1, 768, 17, 17)).shape == (1, k)
    assert head(torch.randn(1, 768, 20, 20)).shape == (1, k)
    with pytest.raises(RuntimeError):  # a 16x16 grid pools to 4x4: too small for the unpadded 5x5 conv
        head(torch.randn(1, 768, 16, 16))
    head.reset_classifier(5)
    assert head.fc.out_features == 5
    x = torch.randn(2, 768, 17, 17, requires_grad=True)
    head.train()(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- Inception-v3

V3A = InceptionV3AWidths(64, (48, 64), (64, 96, 96), 32)        # torchvision Mixed_5b
V3B = InceptionV3BWidths(192, (128, 128, 192), (128, 128, 128, 128, 192), 192)  # Mixed_6b
V3C = InceptionV3CWidths(320, (384, 384), (448, 384, 384), 192)  # Mixed_7b


def v3a_params(c: int, x: InceptionV3AWidths) -> int:
    d = x.b3dbl
    return (w(1, c, x.b1) + w(1, c, x.b5[0]) + w(25, x.b5[0], x.b5[1]) + w(1, c, d[0]) + w(9, d[0], d[1])
            + w(9, d[1], d[2]) + w(1, c, x.pool_proj))


def v3b_params(c: int, x: InceptionV3BWidths) -> int:
    r, a, o = x.b7
    d = x.b7dbl
    return (w(1, c, x.b1) + w(1, c, r) + w(7, r, a) + w(7, a, o) + w(1, c, d[0]) + w(7, d[0], d[1])
            + w(7, d[1], d[2]) + w(7, d[2], d[3]) + w(7, d[3], d[4]) + w(1, c, x.pool_proj))


def v3c_params(c: int, x: InceptionV3CWidths) -> int:
    r, o = x.b3
    r2, m, o2 = x.b3dbl
    return (w(1, c, x.b1) + w(1, c, r) + 2 * w(3, r, o) + w(1, c, r2) + w(9, r2, m) + 2 * w(3, m, o2)
            + w(1, c, x.pool_proj))


@pytest.mark.parametrize(("block", "c", "params", "depth"), [
    (lambda: InceptionV3A(192, V3A), 192, v3a_params(192, V3A), 64 + 64 + 96 + 32),
    (lambda: InceptionV3B(768, V3B), 768, v3b_params(768, V3B), 4 * 192),
    (lambda: InceptionV3C(1280, V3C), 1280, v3c_params(1280, V3C), 320 + 2 * 384 + 2 * 384 + 192),
], ids=["A", "B", "C"])
def test_inception_v3_modules_params_and_depth(block, c: int, params: int, depth: int) -> None:
    module = block()
    assert n_params(module) == params
    assert module.out_channels == depth
    with torch.device("meta"):
        for size in (1, 8, 17, 35):
            assert module.to("meta").eval()(torch.empty(1, c, size, size)).shape == (1, depth, size, size)


def test_inception_v3_presets_match_torchvision_depths() -> None:
    assert InceptionV3BWidths.uniform(160) == InceptionV3BWidths(192, (160, 160, 192), (160,) * 4 + (192,), 192)


@pytest.mark.parametrize("size", [3, 17, 35, 36])
def test_reduction_a_halves_the_grid(size: int) -> None:
    x = ReductionAWidths(k=8, l=12, m=16, n=20)
    block = ReductionA(10, x).eval()
    out = block(torch.randn(1, 10, size, size))
    assert out.shape == (1, 20 + 16 + 10, (size - 3) // 2 + 1, (size - 3) // 2 + 1)
    assert n_params(block) == w(9, 10, 20) + w(1, 10, 8) + w(9, 8, 12) + w(9, 12, 16)


@pytest.mark.parametrize("size", [3, 8, 17])
def test_reduction_b_halves_the_grid(size: int) -> None:
    x = ReductionBWidths((6, 7), (4, 5, 6, 8))
    block = ReductionB(9, x).eval()
    assert block(torch.randn(1, 9, size, size)).shape == (1, 7 + 8 + 9, (size - 3) // 2 + 1, (size - 3) // 2 + 1)
    assert n_params(block) == w(1, 9, 6) + w(9, 6, 7) + w(1, 9, 4) + w(7, 4, 5) + w(7, 5, 6) + w(9, 6, 8)


def test_inception_v3_gradients_reach_input() -> None:
    for block, c in [(InceptionV3A(6, InceptionV3AWidths(2, (2, 3), (2, 3, 4), 2)), 6),
                     (InceptionV3B(6, InceptionV3BWidths.uniform(3, 4)), 6),
                     (InceptionV3C(6, InceptionV3CWidths(2, (3, 4), (3, 4, 5), 2)), 6),
                     (ReductionA(6, ReductionAWidths(2, 3, 4, 5)), 6),
                     (ReductionB(6, ReductionBWidths((2, 3), (2, 3, 4, 5))), 6)]:
        x = torch.randn(2, c, 9, 9, requires_grad=True)
        block(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0, type(block).__name__


def test_avg_pool_padding_convention_is_an_option() -> None:
    # torchvision counts the zero padding in the 3x3 average (True), timm / TF-slim do not (False)
    x = torch.ones(1, 4, 5, 5)
    widths = InceptionV3AWidths(1, (1, 1), (1, 1, 1), 2)
    tv, slim = InceptionV3A(4, widths, True), InceptionV3A(4, widths, False)
    assert tv.branch3[0](x)[0, 0, 0, 0] == pytest.approx(4 / 9)
    assert slim.branch3[0](x)[0, 0, 0, 0] == pytest.approx(1.0)


def test_widths_check_tuple_length_and_type() -> None:
    with pytest.raises(ValueError, match=r"InceptionV3AWidths.b5 must be a tuple of 2"):
        InceptionV3AWidths(64, (48,), (64, 96, 96), 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"InceptionV3BWidths.b7dbl"):
        InceptionV3BWidths(192, (1, 1, 1), (1, 1, 1, 0, 1), 1)
    with pytest.raises(ValueError, match=r"ReductionAWidths.m"):
        ReductionAWidths(1, 1, -1, 1)
    with pytest.raises(ValueError, match=r"InceptionV1Widths.b1 must be a positive int"):  # an int field
        InceptionV1Widths((64, 64), 96, 128, 16, 32, 32)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ReductionAWidths"):
        ReductionA(8, V3A)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- Inception-v4


def test_inception_v4_stem_params_and_shape() -> None:
    stem = InceptionV4Stem(3)
    expected = (w(9, 3, 32) + w(9, 32, 32) + w(9, 32, 64) + w(9, 64, 96) + 2 * w(1, 160, 64) + 2 * w(9, 64, 96)
                + 2 * w(7, 64, 64) + w(9, 192, 192))
    assert n_params(stem) == expected
    with torch.device("meta"):
        assert stem.to("meta").eval()(torch.empty(1, 3, 299, 299)).shape == (1, 384, 35, 35)  # Fig. 3


def test_inception_v4_a_b_c_params_and_depth() -> None:
    a, c = INCEPTION_V4_A, INCEPTION_V4_C
    block_a = InceptionV4A(384, a)
    assert n_params(block_a) == (w(1, 384, 96) + w(1, 384, 64) + w(9, 64, 96) + w(1, 384, 64) + w(9, 64, 96)
                                 + w(9, 96, 96) + w(1, 384, 96))
    assert block_a.out_channels == 384
    block_b = InceptionV3B(1024, INCEPTION_V4_B, pool_count_include_pad=False)
    assert block_b.out_channels == 384 + 256 + 256 + 128 == 1024
    r, a1, b1, o = c.b3dbl
    block_c = InceptionV4C(1536, c)
    assert n_params(block_c) == (w(1, 1536, 256) + w(1, 1536, 384) + 2 * w(3, 384, 256) + w(1, 1536, r)
                                 + w(3, r, a1) + w(3, a1, b1) + 2 * w(3, b1, o) + w(1, 1536, 256))
    assert block_c.out_channels == 256 + 512 + 512 + 256 == 1536
    with torch.device("meta"):
        for block, ch, size in [(block_a, 384, 35), (block_b, 1024, 17), (block_c, 1536, 8), (block_c, 1536, 3)]:
            assert block.to("meta").eval()(torch.empty(1, ch, size, size)).shape == (1, ch, size, size)


def test_inception_v4_reductions_give_paper_depths() -> None:
    # Szegedy et al. 2017 Fig. 9: 35x35x384 -> 17x17x1024 -> 8x8x1536
    red_a, red_b = ReductionA(384, INCEPTION_V4_REDUCTION_A), ReductionB(1024, INCEPTION_V4_REDUCTION_B)
    assert (red_a.out_channels, red_b.out_channels) == (1024, 1536)
    with torch.device("meta"):
        assert red_a.to("meta").eval()(torch.empty(1, 384, 35, 35)).shape == (1, 1024, 17, 17)
        assert red_b.to("meta").eval()(torch.empty(1, 1024, 17, 17)).shape == (1, 1536, 8, 8)


# ---------------------------------------------------------------------------------------------- Inception-ResNet


def ir_a_params(c: int, x: InceptionResNetAWidths) -> int:
    d = x.b3dbl
    branches = w(1, c, x.b1) + w(1, c, x.b3[0]) + w(9, x.b3[0], x.b3[1]) + w(1, c, d[0]) + w(9, d[0], d[1]) + w(
        9, d[1], d[2])
    return branches + (x.b1 + x.b3[1] + d[2]) * c + c  # 1x1 linear expansion with bias


def ir_bc_params(c: int, b1: int, chain: tuple[int, int, int], k: int) -> int:
    r, a, o = chain
    return w(1, c, b1) + w(1, c, r) + w(k, r, a) + w(k, a, o) + (b1 + o) * c + c


@pytest.mark.parametrize(("widths", "c"), [(INCEPTION_RESNET_V1_A, 256), (INCEPTION_RESNET_V2_A, 320),
                                           (INCEPTION_RESNET_V2_A, 384)], ids=["v1", "v2-slim", "v2-paper"])
def test_inception_resnet_a_params(widths: InceptionResNetAWidths, c: int) -> None:
    unit = InceptionResNetA(c, widths, scale=0.17)
    assert n_params(unit) == ir_a_params(c, widths)
    assert unit.out_channels == c and unit.branch_channels == widths.b1 + widths.b3[1] + widths.b3dbl[2]


@pytest.mark.parametrize(("cls", "widths", "c", "k"), [
    (InceptionResNetB, INCEPTION_RESNET_V1_B, 896, 7), (InceptionResNetB, INCEPTION_RESNET_V2_B, 1088, 7),
    (InceptionResNetC, INCEPTION_RESNET_V1_C, 1792, 3), (InceptionResNetC, INCEPTION_RESNET_V2_C, 2080, 3)],
    ids=["B-v1", "B-v2", "C-v1", "C-v2"])
def test_inception_resnet_b_c_params(cls, widths, c: int, k: int) -> None:
    chain = widths.b7 if cls is InceptionResNetB else widths.b3
    assert n_params(cls(c, widths)) == ir_bc_params(c, widths.b1, chain, k)


@pytest.mark.parametrize(("cls", "widths", "size"), [(InceptionResNetA, INCEPTION_RESNET_V1_A, 7),
                                                     (InceptionResNetB, INCEPTION_RESNET_V1_B, 5),
                                                     (InceptionResNetC, INCEPTION_RESNET_V1_C, 3)])
def test_inception_resnet_scale_zero_is_identity_before_activation(cls, widths, size: int) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 24, size, size)
    linear = cls(24, widths, scale=0.0, activate=False).eval()
    assert torch.equal(linear(x), x)
    assert torch.equal(cls(24, widths, scale=0.0).eval()(x), torch.relu(x))
    scaled = cls(24, widths, scale=0.2).eval()  # a non-zero scale adds 0.2 x the expanded branches
    residual = scaled.expand(torch.cat([getattr(scaled, f"branch{i}")(x) for i in range(scaled.num_branches)], 1))
    assert torch.allclose(scaled(x), torch.relu(x + 0.2 * residual), atol=1e-6)


def test_inception_resnet_gradients_reach_input() -> None:
    for unit in (InceptionResNetA(16, INCEPTION_RESNET_V1_A, 0.1), InceptionResNetB(16, INCEPTION_RESNET_V1_B, 0.1),
                 InceptionResNetC(16, INCEPTION_RESNET_V1_C, 0.1, activate=False)):
        x = torch.randn(2, 16, 6, 6, requires_grad=True)
        unit(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        assert unit.expand.weight.grad is not None


def test_inception_resnet_bad_args() -> None:
    for scale in (-0.1, float("inf"), True, "0.1"):
        with pytest.raises(ValueError, match="scale"):
            InceptionResNetA(8, INCEPTION_RESNET_V1_A, scale=scale)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="InceptionResNetBWidths.b7"):
        InceptionResNetBWidths(128, (128, 128))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="InceptionResNetCWidths"):
        InceptionResNetC(8, INCEPTION_RESNET_V1_B)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="in_channels"):
        InceptionResNetA(0, INCEPTION_RESNET_V1_A)


def test_inception_resnet_reduction_b_and_v1_stem() -> None:
    x = INCEPTION_RESNET_V1_REDUCTION_B
    red = InceptionResNetReductionB(896, x)
    (r1, o1), (r2, o2), (r3, m, o3) = x.b3a, x.b3b, x.b3dbl
    assert n_params(red) == (w(1, 896, r1) + w(9, r1, o1) + w(1, 896, r2) + w(9, r2, o2) + w(1, 896, r3)
                             + w(9, r3, m) + w(9, m, o3))
    assert red.out_channels == 384 + 256 + 256 + 896 == 1792  # Fig. 12: 8x8x1792
    stem = InceptionResNetV1Stem(3)
    assert n_params(stem) == (w(9, 3, 32) + w(9, 32, 32) + w(9, 32, 64) + w(1, 64, 80) + w(9, 80, 192)
                              + w(9, 192, 256))
    with torch.device("meta"):
        assert red.to("meta").eval()(torch.empty(1, 896, 17, 17)).shape == (1, 1792, 8, 8)
        assert stem.to("meta").eval()(torch.empty(1, 3, 299, 299)).shape == (1, 256, 35, 35)  # Fig. 14


# ---------------------------------------------------------------------------------------------- MACs


def conv_macs(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of every Conv2d in one forward: output elements x (C_in / groups) x k_h x k_w."""
    total = 0

    def hook(m: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        module.eval()(x)
    for h in handles:
        h.remove()
    return total


def test_inception_v1_macs_formula() -> None:
    c, r, hw = 192, ROW_3A, 28 * 28  # inception (3a) at a 224 input: Table 1 "ops" 128M
    weights = c * r.b1 + c * r.b3_reduce + 9 * r.b3_reduce * r.b3 + c * r.b5_reduce + 25 * r.b5_reduce * r.b5 + (
        c * r.pool_proj)
    macs = conv_macs(InceptionV1(c, r), torch.randn(1, c, 28, 28))
    assert macs == hw * weights
    assert round(macs / 1e6) == 128  # docs/references.md: per-module MACs 3a 128M


@pytest.mark.parametrize("size", [17, 35])
def test_reduction_a_macs_formula(size: int) -> None:
    x, c = ReductionAWidths(k=8, l=12, m=16, n=20), 10
    out = (size - 3) // 2 + 1
    expected = size * size * (c * x.k + 9 * x.k * x.l) + out * out * 9 * (c * x.n + x.l * x.m)
    assert conv_macs(ReductionA(c, x), torch.randn(1, c, size, size)) == expected


# --------------------------------------------------------------------------------------------- one definition


@pytest.mark.parametrize(("cls", "widths", "options"), [
    (InceptionV1, ROW_3A, {"norm": True, "branch5_kernel": 3}), (InceptionV3B, INCEPTION_V4_B, {}),
    (InceptionV4C, INCEPTION_V4_C, {}), (ReductionB, INCEPTION_V4_REDUCTION_B, {}),
    (InceptionResNetC, INCEPTION_RESNET_V2_C, {"scale": 0.2})], ids=lambda v: getattr(v, "__name__", ""))
def test_module_classes_are_built_from_their_widths_spec(cls, widths, options: dict) -> None:
    # the zoo builds the same spec (build_multi_branch): same module names, shapes and seeded values
    spec_options = {"branch5_kernel": 3} if cls is InceptionV1 else {}
    with torch.device("meta"):
        block = cls(64, widths, **options)
        built = build_multi_branch(widths.spec(**spec_options), 64, {"norm": True})
    def layout(module: nn.Module) -> list:
        return [(k, v.shape) for k, v in module.state_dict().items()]

    assert layout(block) == layout(built)
    assert repr(block).split("\n", 1)[1] == repr(built).split("\n", 1)[1]


def test_inception_v1_spec_refuses_an_even_or_bool_kernel() -> None:
    for bad in (4, True, 0):
        with pytest.raises(ValueError, match="branch5_kernel must be an odd int"):
            ROW_3A.spec(bad)
