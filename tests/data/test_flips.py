"""Reflect-padded crops and deterministic alternating flips (airbench, arXiv:2404.00498) in the batch loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import ArrayDataset, Augment, BatchLoader, crop_flip
from cnnlab.data.flips import alternating_flips, first_epoch_flips


def test_reflect_crop_matches_numpy_reflect_padding():
    x = torch.randint(0, 256, (16, 6, 5, 3), dtype=torch.uint8)
    out = crop_flip(x, Augment(padding=2, hflip=True, reflect=True), torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)  # the same draws, in the same order, as crop_flip
    dy, dx = torch.randint(0, 5, (16,), generator=g), torch.randint(0, 5, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = np.pad(x.numpy(), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    for i in range(16):
        ref = padded[i, dy[i]:dy[i] + 6, dx[i]:dx[i] + 5]
        assert np.array_equal(out[i].numpy(), ref[:, ::-1] if flip[i] else ref)
    with pytest.raises(ValueError, match="reflect"):
        crop_flip(x, Augment(padding=5, reflect=True), torch.Generator())


def test_given_flips_replace_the_draw():
    x = torch.randint(0, 256, (4, 3, 3, 1), dtype=torch.uint8)
    flips = torch.tensor([True, False, True, False])
    out = crop_flip(x, Augment(padding=0), torch.Generator().manual_seed(0), flips)
    assert torch.equal(out[0], x[0].flip(1)) and torch.equal(out[1], x[1])


def test_alternating_flips_alternate_per_image():
    first = first_epoch_flips(1000, seed=5)
    assert 400 < int(first.sum()) < 600  # a fair coin per image in epoch 0
    assert torch.equal(first, first_epoch_flips(1000, seed=5)) and not torch.equal(first, first_epoch_flips(1000, 6))
    idx = torch.randperm(1000)
    epochs = [alternating_flips(first, idx, e) for e in range(4)]
    assert torch.equal(epochs[0], first[idx]) and torch.equal(epochs[2], epochs[0])
    assert torch.equal(epochs[1], ~epochs[0]) and torch.equal(epochs[3], ~epochs[2])  # never twice alike in a row


def _loader(n: int = 12, seed: int = 1) -> tuple[BatchLoader, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    data = ArrayDataset(x, np.zeros(n, dtype=np.int64), ("a",))
    augment = Augment(padding=0, hflip=True, alternate_flips=True)
    return BatchLoader(data, n, (0.0,), (1 / 255,), train=True, augment=augment, seed=seed), x


def test_loader_shows_each_image_mirrored_in_alternate_epochs():
    loader, x = _loader()
    g = torch.Generator().manual_seed(0)
    seen = []
    for epoch in range(3):
        order = loader.epoch_order(epoch)
        batch, _ = loader.batch(order, 0, g, epoch=epoch)
        images = batch[:, 0].round().to(torch.uint8).numpy()  # normalised with mean 0, std 1/255: the pixels
        flipped = {}
        for img, i in zip(images, order.tolist()):
            assert np.array_equal(img, x[i, :, :, 0]) or np.array_equal(img, x[i, :, ::-1, 0])
            flipped[i] = not np.array_equal(img, x[i, :, :, 0])
        seen.append(flipped)
    for i in range(len(x)):
        if not np.array_equal(x[i], x[i, :, ::-1]):  # a symmetric image cannot show its flip
            assert seen[0][i] != seen[1][i] and seen[1][i] != seen[2][i]
    with pytest.raises(ValueError, match="epoch"):
        loader.batch(loader.epoch_order(0), 0, g)
