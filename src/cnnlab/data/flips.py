"""Deterministic alternating flips (K. Jordan 2024, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU",
arXiv:2404.00498).

Random flipping shows an image in the same orientation in two consecutive epochs half of the time. Alternating
flips draw each image's orientation at random in the first epoch only, then flip every image in every odd
epoch: each image is seen mirrored and unmirrored in turn, so any two consecutive epochs show both views. The
paper reports that this beats random flipping wherever flipping helps at all.

Here the first epoch's draw is a pure function of the run's seed and the image's index, so the flip of image
``i`` in epoch ``e`` is ``first[i] XOR (e is odd)``: no state to save, exact on resume and on every rank.
"""

from __future__ import annotations

import torch


def first_epoch_flips(n: int, seed: int) -> torch.Tensor:
    """Which of ``n`` images are flipped in epoch 0: a fair coin per image, from ``seed`` alone."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + 7_777_777)  # apart from epoch_order's streams
    return torch.rand(n, generator=g) < 0.5


def alternating_flips(first: torch.Tensor, indices: torch.Tensor, epoch: int) -> torch.Tensor:
    """The flips of images ``indices`` in ``epoch``: their epoch-0 draw, inverted in odd epochs."""
    flips = first[indices.to(first.device)]
    return ~flips if epoch % 2 else flips
