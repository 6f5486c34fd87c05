"""Inception blocks: shapes, parameter counts against closed forms, gradients, argument checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.blocks import GoogLeNetAux, InceptionV1, InceptionV1Widths, InceptionV3Aux


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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
