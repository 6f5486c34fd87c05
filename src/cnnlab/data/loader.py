"""In-memory batches with the papers' augmentation, done on whole uint8 batches (no per-image Python).

The data set lives as one uint8 tensor (N, H, W, C), on the training device when that is a GPU. A training
batch is gathered by index, padded, randomly cropped and flipped in one indexing operation, then normalised
to float (N, C, H, W) in channels_last memory order (the NHWC storage of the uint8 data, seen as NCHW).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data.flips import alternating_flips, first_epoch_flips
from cnnlab.data.formats import ArrayDataset


@dataclass(frozen=True)
class Augment:
    """Random crop after zero padding, and random horizontal flip (He et al. 2016, Sec. 4.2: pad 4, crop 32, flip).

    ``reflect``: pad by mirroring the border pixels instead of zeros; ``alternate_flips``: each image flipped in
    alternate epochs, at random only in the first (airbench, arXiv:2404.00498; see ``cnnlab.data.flips``).
    """

    padding: int = 4
    hflip: bool = True
    reflect: bool = False
    alternate_flips: bool = False


def channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images (N, H, W, C), on the 0..1 scale."""
    if len(x) == 0:
        raise ValueError("cannot compute channel statistics of an empty data set")
    flat = x.reshape(-1, x.shape[-1])
    total = np.zeros(x.shape[-1])
    total_sq = np.zeros(x.shape[-1])
    for start in range(0, len(flat), 1 << 22):  # chunks keep the float64 copy small
        chunk = flat[start:start + (1 << 22)].astype(np.float64)
        total += chunk.sum(0)
        total_sq += (chunk * chunk).sum(0)
    mean = total / len(flat)
    std = np.sqrt(np.maximum(total_sq / len(flat) - mean * mean, 1e-12))
    return tuple(float(m) / 255 for m in mean), tuple(float(s) / 255 for s in std)


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Indices -p..size-1+p folded back into the image by mirroring at its first and last pixel."""
    return (size - 1) - ((size - 1) - index.abs()).abs()


def crop_flip(x: torch.Tensor, augment: Augment, generator: torch.Generator,
              flip: torch.Tensor | None = None) -> torch.Tensor:
    """Pad, random-crop back to the input size and random-flip a uint8 batch (B, H, W, C), all images at once.

    ``flip`` (B booleans) replaces the random flip draw, e.g. with alternating flips."""
    b, h, w, _ = x.shape
    p = augment.padding
    device = x.device
    if augment.reflect and p >= min(h, w):
        raise ValueError(f"reflect padding of {p} needs images larger than {p}x{p}, got {h}x{w}")
    # draw on the CPU generator so that results do not depend on the device
    dy = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(device)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=generator).to(device)
    if flip is None and augment.hflip:
        flip = torch.rand(b, generator=generator) < 0.5
    flip = flip.to(device) if flip is not None else None
    offset = 0
    if p and augment.reflect:
        offset = p  # index the unpadded image and mirror out-of-range indices: no padded copy
    elif p:
        x = F.pad(x, (0, 0, p, p, p, p))  # zero padding of H and W of an NHWC batch
    c = x.shape[-1]
    # two gathers (rows, then columns) are about 2x faster than one 3-index advanced-indexing gather
    rows = dy[:, None] + torch.arange(h, device=device) - offset
    rows = _reflect(rows, h) if offset else rows
    x = torch.gather(x, 1, rows.view(b, h, 1, 1).expand(b, h, x.shape[2], c))
    cols = torch.arange(w, device=device).expand(b, w)
    if flip is not None:
        cols = torch.where(flip[:, None], w - 1 - cols, cols)
    cols = dx[:, None] + cols - offset
    cols = _reflect(cols, w) if offset else cols
    return torch.gather(x, 2, cols.view(b, 1, w, 1).expand(b, h, w, c))


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float],
              channels_last: bool = True) -> torch.Tensor:
    """uint8 (B, H, W, C) -> float32 (B, C, H, W), (x/255 - mean) / std per channel."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=x.device)
    shift = torch.tensor([-m / s for m, s in zip(mean, std)], device=x.device)
    out = torch.addcmul(shift, x.float(), scale).permute(0, 3, 1, 2)  # NHWC storage = channels_last NCHW
    return out if channels_last else out.contiguous()


class BatchLoader:
    """Batches of one in-memory data set: shuffled and augmented for training, in order for evaluation.

    Training batches are global: every rank draws the same permutation and augmentation numbers and keeps
    its slice ``rank::world_size``, so K processes see exactly the images one process would (sharded sampling).
    The order of epoch ``e`` is a pure function of ``(seed, e)``, so a run can resume in the middle of an epoch.
    """

    def __init__(self, data: ArrayDataset, batch_size: int, mean: Sequence[float], std: Sequence[float], *,
                 train: bool, augment: Augment | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 device: torch.device | str = "cpu", channels_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if train and batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of processes {world_size}")
        self.x = torch.from_numpy(data.x).to(device)
        self.y = torch.from_numpy(data.y).to(device)
        self.batch_size = min(batch_size, len(data)) if train else batch_size
        if train and self.batch_size % world_size:
            raise ValueError(f"a data set of {len(data)} images is too small for {world_size} processes")
        self.mean, self.std = tuple(mean), tuple(std)
        self.train, self.augment, self.seed = train, augment, seed
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        alternate = augment is not None and augment.hflip and augment.alternate_flips
        self.first_flips = first_epoch_flips(len(data), seed) if train and alternate else None

    def __len__(self) -> int:
        """Training: full batches per epoch (the remainder is dropped). Evaluation: batches of this rank's shard."""
        if self.train:
            return len(self.y) // self.batch_size
        shard = len(range(self.rank, len(self.y), self.world_size))
        return -(-shard // self.batch_size)

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch``: a pure function of the seed and the epoch."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.y), generator=g)

    def batch(self, order: torch.Tensor, index: int, generator: torch.Generator,
              epoch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch ``index`` of an epoch order: this rank's slice, augmented and normalised (alternating
        flips need the ``epoch``)."""
        idx = order[index * self.batch_size:(index + 1) * self.batch_size].to(self.x.device)
        x = self.x[idx]
        if self.augment is not None:
            flip = None
            if self.first_flips is not None:
                if epoch is None:
                    raise ValueError("alternating flips depend on the epoch: pass batch(..., epoch=e)")
                flip = alternating_flips(self.first_flips, idx, epoch)
            x = crop_flip(x, self.augment, generator, flip)  # draws for the global batch keep ranks in step
        if self.world_size > 1:
            x, idx = x[self.rank::self.world_size], idx[self.rank::self.world_size]
        return normalize(x, self.mean, self.std, self.channels_last), self.y[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluation batches of this rank's shard, in data-set order, without augmentation."""
        shard = torch.arange(self.rank, len(self.y), self.world_size, device=self.x.device)
        for start in range(0, len(shard), self.batch_size):
            idx = shard[start:start + self.batch_size]
            yield normalize(self.x[idx], self.mean, self.std, self.channels_last), self.y[idx]
