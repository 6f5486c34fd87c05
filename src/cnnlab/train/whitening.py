"""Initialisations from airbench (K. Jordan 2024, arXiv:2404.00498): patch whitening and partial identity.

Patch whitening (``whiten_init``): the first convolution, with ``k x k`` kernels over ``C`` channels, sees
patches of ``d = C k^2`` values. From the patches of the first ``WHITEN_IMAGES`` normalised training images its
filters are set to the eigenvectors ``v_i`` of the patches' second-moment matrix (the covariance, the images
being normalised to zero channel means), each divided by ``sqrt(lambda_i + eps)``: its outputs are the patches'
coordinates in a basis where they have unit variance and no correlation. A layer of ``2d`` filters also gets
the negated filters, so that a following ReLU / GELU loses no sign. The filters are then frozen: only the
layer's bias (if any) trains.

Partial identity (``dirac_init``): every convolution (groups 1) starts with its first ``C_in`` filters as the
identity (``torch.nn.init.dirac_``: a 1 at the kernel centre of filter ``i``, input channel ``i``), the rest
as built, so that a deep stack of convolutions starts close to passing its input through.
"""

from __future__ import annotations

import torch
from torch import nn

WHITEN_IMAGES = 5000  # airbench: the first 5,000 training images
WHITEN_EPS = 5e-4  # added to every eigenvalue: bounds the gain on near-constant directions


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` in module order."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer to whiten; drop whiten_init")
    return conv


def patch_moments(images: torch.Tensor, kernel: tuple[int, int], chunk: int = 500) -> torch.Tensor:
    """The (d, d) second-moment matrix, in float64, of every ``kernel`` patch (stride 1) of images (N, C, H, W)."""
    kh, kw = kernel
    d = images.shape[1] * kh * kw
    total = torch.zeros(d, d, dtype=torch.float64)
    count = 0
    for start in range(0, len(images), chunk):  # chunks keep the unfolded copy small (500 x 961 x 12 here)
        x = images[start:start + chunk].float()
        patches = x.unfold(2, kh, 1).unfold(3, kw, 1)  # N, C, H', W', kh, kw
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, d).double().cpu()  # C, kh, kw order = weight order
        total += flat.T @ flat
        count += len(flat)
    return total / max(1, count)


def whitening_filters(images: torch.Tensor, kernel: tuple[int, int], eps: float = WHITEN_EPS) -> torch.Tensor:
    """The ``d`` whitening filters (d, C, kh, kw) of ``images``' patches, largest eigenvalue first."""
    eigenvalues, eigenvectors = torch.linalg.eigh(patch_moments(images, kernel))
    order = eigenvalues.argsort(descending=True)
    scaled = eigenvectors[:, order].T / torch.sqrt(eigenvalues[order].clamp_min(0) + eps)[:, None]
    return scaled.reshape(-1, images.shape[1], *kernel).float()


@torch.no_grad()
def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = WHITEN_EPS) -> None:
    """Set ``conv``'s filters to whiten the patches of ``images`` (normalised, N x C x H x W) and freeze them."""
    c, (kh, kw) = conv.in_channels, conv.kernel_size
    d = c * kh * kw
    if conv.groups != 1 or conv.out_channels not in (d, 2 * d):
        raise ValueError(f"whiten_init needs a first conv with groups 1 and {d} or {2 * d} filters for its "
                         f"{c}x{kh}x{kw} patches, got {conv.out_channels} filters in {conv.groups} groups; "
                         f"drop whiten_init or change the model")
    filters = whitening_filters(images, (kh, kw), eps)
    if conv.out_channels == 2 * d:
        filters = torch.cat([filters, -filters])
    conv.weight.copy_(filters.to(conv.weight.device, conv.weight.dtype))
    conv.weight.requires_grad_(False)


@torch.no_grad()
def init_dirac(model: nn.Module) -> int:
    """Partial identity init of every Conv2d with groups 1; returns how many convs it set."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    for conv in convs:
        nn.init.dirac_(conv.weight[:conv.in_channels])  # the first min(C_out, C_in) filters
    return len(convs)
