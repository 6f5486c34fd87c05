"""Convolution building blocks: conv + norm + activation, stacked 3x3, asymmetric n x 1 / 1 x n, 1x1 reduction.

Counting convention used in every docstring (see ``cnnlab.analysis.cost``): a convolution with
``C_in`` inputs, ``C_out`` outputs, kernel ``k_h x k_w`` and ``g`` groups has
``C_out * C_in / g * k_h * k_w`` weights (+ ``C_out`` bias) and
``H_out * W_out * C_out * C_in / g * k_h * k_w`` multiply-adds (MACs). Batch norm adds ``2 * C`` parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from cnnlab.blocks._validate import check_channels, check_odd_kernel, check_positive, pair

ActLayer = str | Callable[..., nn.Module] | None

_ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def make_activation(act: ActLayer, inplace: bool = True) -> nn.Module:
    """Build an activation from a name (``"relu"``, ``"gelu"``, ...), a module class, or ``None`` (identity)."""
    if act is None or act == "none" or act == "identity":
        return nn.Identity()
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(f"act must be one of {sorted(_ACTIVATIONS)} or None, got {act!r}")
        act = _ACTIVATIONS[act]
    if act in (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU):
        return act(inplace=inplace)
    return act()


def same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """Padding that keeps H x W unchanged at stride 1 for odd (also asymmetric) kernels."""
    return tuple(d * (k - 1) // 2 for k, d in zip(kernel_size, dilation))  # type: ignore[return-value]


class ConvNormAct(nn.Sequential):
    """Convolution -> batch norm -> activation (or norm -> act -> conv with ``preact=True``).

    The unit of every classic CNN since batch normalization (Ioffe & Szegedy 2015); the pre-activation
    order is He et al. 2016, "Identity Mappings in Deep Residual Networks".
    Params: ``C_out * C_in / g * k_h * k_w`` (+ ``C_out`` if ``bias``) + ``2 * C`` for the norm
    (``C = C_out``, or ``C_in`` when ``preact``). MACs: ``H_out * W_out * C_out * C_in / g * k_h * k_w``.
    ``padding=None`` keeps the spatial size at stride 1; ``bias=None`` means "bias only without a norm".
    ``pool=p`` puts a ``p x p`` stride-``p`` max-pool between the conv and the norm (conv -> pool -> norm -> act,
    airbench's conv groups, arXiv:2404.00498): the norm and activation then run on ``1/p^2`` of the pixels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] | None = None,
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool | None = None,
        norm: bool = True,
        act: ActLayer = "relu",
        preact: bool = False,
        norm_eps: float = 1e-5,
        norm_momentum: float = 0.1,
        inplace: bool = True,
        pool: int | None = None,
    ) -> None:
        super().__init__()
        check_channels(in_channels, out_channels, groups)
        kernel = pair(kernel_size, "kernel_size")
        for k in kernel:
            check_positive(k, "kernel_size")
        strides = pair(stride, "stride")
        for s in strides:
            check_positive(s, "stride")
        dilations = pair(dilation, "dilation")
        if padding is None:
            # an even kernel cannot be padded symmetrically to keep the size: refuse rather than shift the grid
            check_odd_kernel(kernel)
            pad = same_padding(kernel, dilations)
        else:
            pad = pair(padding, "padding")
        use_bias = (not norm) if bias is None else bias
        self.in_channels, self.out_channels = in_channels, out_channels
        self.preact = preact
        conv = nn.Conv2d(in_channels, out_channels, kernel, strides, pad, dilations, groups, bias=use_bias)
        norm_channels = in_channels if preact else out_channels
        bn = nn.BatchNorm2d(norm_channels, eps=norm_eps, momentum=norm_momentum) if norm else None
        activation = make_activation(act, inplace=inplace and not preact)
        if pool is not None and preact:
            raise ValueError("pool applies to the conv -> norm -> act order; pass preact=False with it")
        pooling = nn.MaxPool2d(check_positive(pool, "pool")) if pool is not None else None
        # names match torchvision's BasicConv2d (conv, bn) so that state dicts map one to one
        order = [("bn", bn), ("act", activation), ("conv", conv)] if preact else [
            ("conv", conv), ("pool", pooling), ("bn", bn), ("act", activation)]
        for name, module in order:
            if module is not None and not (name == "act" and isinstance(module, nn.Identity)):
                self.add_module(name, module)

    # read-only views for code that rebuilds a unit (the design transforms): the child names stay this block's own
    @property
    def normalization(self) -> nn.Module | None:
        """The norm layer, or ``None`` when built with ``norm=False``."""
        return self._modules.get("bn")

    @property
    def activation(self) -> nn.Module | None:
        """The activation layer, or ``None`` when built with ``act=None``."""
        return self._modules.get("act")

    @property
    def pooling(self) -> nn.Module | None:
        """The max-pool between conv and norm, or ``None`` when built without ``pool``."""
        return self._modules.get("pool")


class StackedConv(nn.Sequential):
    """A ``k x k`` convolution expressed as ``(k - 1) / 2`` stacked 3x3 ConvNormAct layers.

    Same receptive field, fewer weights: two 3x3 cover a 5x5 with 18/25 of the weights at equal
    channels (Szegedy et al. 2016, "Rethinking the Inception Architecture", Sec. 3.1; Simonyan &
    Zisserman 2015, Sec. 2.3: three 3x3 = 27 C^2 vs one 7x7 = 49 C^2).
    Params (no norm, no bias, all widths C): ``(k - 1) / 2 * 9 * C^2``. MACs: ``H * W`` times that.
    Intermediate layers have ``mid_channels`` (default ``out_channels``); the stride applies to the first.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 5,
        stride: int = 1,
        mid_channels: int | None = None,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        check_channels(in_channels, out_channels)
        if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 3 (3, 5, 7, ...), got {kernel_size!r}")
        mid = out_channels if mid_channels is None else check_positive(mid_channels, "mid_channels")
        depth = (kernel_size - 1) // 2
        channels = [in_channels] + [mid] * (depth - 1) + [out_channels]
        for i in range(depth):
            self.add_module(str(i), ConvNormAct(channels[i], channels[i + 1], 3, stride if i == 0 else 1,
                                                **conv_kwargs))


class AsymmetricConv(nn.Module):
    """An ``n x n`` convolution factorized as ``n x 1`` then ``1 x n`` (Szegedy et al. 2016, Sec. 3.2).

    At equal channels C the pair has ``2n C^2`` weights instead of ``n^2 C^2`` (3x3: 6/9, 7x7: 14/49).
    ``parallel=True`` is the expanded form of Inception-v3's 8x8 modules (Fig. 7): ``1 x n`` and ``n x 1``
    side by side on the same input, concatenated, so the output has ``2 * out_channels`` channels.
    ``vertical_first`` chooses the order of the sequential form (False: ``1 x n`` first, as torchvision's
    Inception-v3 B module). Params (no norm/bias): sequential ``n*C_in*C_mid + n*C_mid*C_out``;
    parallel ``2*n*C_in*C_out``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        mid_channels: int | None = None,
        parallel: bool = False,
        vertical_first: bool = True,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        check_channels(in_channels, out_channels)
        if not isinstance(kernel_size, int) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd int >= 3 (3, 5, 7, ...), got {kernel_size!r}")
        n = kernel_size
        self.parallel = parallel
        if parallel:
            if mid_channels is not None:
                raise ValueError("mid_channels is only used by the sequential form; pass parallel=False")
            self.conv_1xn = ConvNormAct(in_channels, out_channels, (1, n), **conv_kwargs)
            self.conv_nx1 = ConvNormAct(in_channels, out_channels, (n, 1), **conv_kwargs)
        else:
            mid = out_channels if mid_channels is None else check_positive(mid_channels, "mid_channels")
            first, second = ((n, 1), (1, n)) if vertical_first else ((1, n), (n, 1))
            self.conv1 = ConvNormAct(in_channels, mid, first, **conv_kwargs)
            self.conv2 = ConvNormAct(mid, out_channels, second, **conv_kwargs)
        self.out_channels = 2 * out_channels if parallel else out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.parallel:
            return torch.cat([self.conv_1xn(x), self.conv_nx1(x)], dim=1)
        return self.conv2(self.conv1(x))


class ReducedConv(nn.Sequential):
    """A 1x1 channel reduction followed by the expensive spatial convolution (the "bottleneck").

    From Network in Network (Lin et al. 2014) as used by GoogLeNet (Szegedy et al. 2015, Sec. 4): the 1x1
    cuts depth to ``reduce_channels`` so the ``k x k`` convolution costs
    ``H*W*(C_in*R + R*C_out*k*k)`` MACs instead of ``H*W*C_in*C_out*k*k``.
    Params (no norm/bias): ``C_in*R + R*C_out*k_h*k_w``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        reduce_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int = 1,
        **conv_kwargs,
    ) -> None:
        super().__init__()
        check_channels(in_channels, out_channels)
        check_positive(reduce_channels, "reduce_channels")
        self.reduce = ConvNormAct(in_channels, reduce_channels, 1, **conv_kwargs)
        self.conv = ConvNormAct(reduce_channels, out_channels, kernel_size, stride, **conv_kwargs)
