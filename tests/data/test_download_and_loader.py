"""Download (file:// URLs and fake openers, never the network), augmentation and batching."""

from __future__ import annotations

import hashlib
import io
import urllib.error

import numpy as np
import pytest
import torch

from cnnlab.data import (
    ArrayDataset,
    Augment,
    BatchLoader,
    ChecksumError,
    OfflineError,
    channel_stats,
    crop_flip,
    download,
    load_dataset,
    normalize,
)


def test_download_verifies_then_renames(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"official bytes")
    good = hashlib.md5(b"official bytes").hexdigest()
    dest = download(src.as_uri(), tmp_path / "out" / "file.bin", good)
    assert dest.read_bytes() == b"official bytes"
    sha = hashlib.sha256(b"official bytes").hexdigest()
    assert download(src.as_uri(), tmp_path / "out" / "sha.bin", sha).exists()
    with pytest.raises(ChecksumError, match="md5 is .* expected 0+"):
        download(src.as_uri(), tmp_path / "out" / "bad.bin", "0" * 32)
    # neither the target nor a temp file is left behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["file.bin", "sha.bin"]


def test_offline_error_names_files(tmp_path):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    with pytest.raises(OfflineError) as err:
        load_dataset("mnist", "train", tmp_path, opener=offline)
    message = str(err.value)
    assert "train-images-idx3-ubyte.gz" in message and str(tmp_path / "mnist") in message
    assert "--data-dir" in message
    assert not (tmp_path / "mnist").exists()  # a failed download leaves no folder behind
    with pytest.raises(OfflineError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "train", tmp_path, download=False)


def test_download_mismatch_through_dataset(tmp_path):
    def wrong_bytes(url, timeout):
        return io.BytesIO(b"a captive portal page")

    with pytest.raises(ChecksumError):
        load_dataset("svhn", "test", tmp_path, opener=wrong_bytes)
    assert not (tmp_path / "svhn").exists()


def test_crop_flip_matches_per_image_reference():
    x = torch.randint(0, 256, (16, 6, 5, 3), dtype=torch.uint8)
    out = crop_flip(x, Augment(padding=2, hflip=True), torch.Generator().manual_seed(3))
    # replay the same draws and crop each image one at a time in numpy
    g = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (16,), generator=g), torch.randint(0, 5, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    padded = np.pad(x.numpy(), ((0, 0), (2, 2), (2, 2), (0, 0)))
    for i in range(16):
        ref = padded[i, dy[i]:dy[i] + 6, dx[i]:dx[i] + 5]
        if flip[i]:
            ref = ref[:, ::-1]
        assert np.array_equal(out[i].numpy(), ref)
    assert 0 < int(flip.sum()) < 16


def test_normalize_and_stats():
    x = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    mean, std = channel_stats(x)
    assert np.allclose(mean, x.reshape(-1, 3).mean(0) / 255) and np.allclose(std, x.reshape(-1, 3).std(0) / 255)
    out = normalize(torch.from_numpy(x), mean, std)
    assert out.shape == (20, 3, 4, 4) and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)


def test_loader_sharding_and_order():
    ds = ArrayDataset(np.arange(24, dtype=np.uint8).reshape(24, 1, 1, 1).repeat(2, 1).repeat(2, 2),
                      np.arange(24), ())  # no class names: 24 classes, inferred from the labels
    one = BatchLoader(ds, 8, (0.0,), (1 / 255,), train=True, seed=5)
    assert len(one) == 3
    order = one.epoch_order(1)
    assert torch.equal(order, one.epoch_order(1)) and not torch.equal(order, one.epoch_order(2))
    _, y_full = one.batch(order, 1, torch.Generator())
    parts = [BatchLoader(ds, 8, (0.0,), (1 / 255,), train=True, seed=5, rank=r, world_size=2).batch(
        order, 1, torch.Generator())[1] for r in range(2)]
    assert torch.equal(torch.sort(torch.cat(parts)).values, torch.sort(y_full).values)
    assert torch.equal(y_full, order[8:16])
    evals = [torch.cat([y for _, y in BatchLoader(ds, 5, (0.0,), (1.0,), train=False, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(torch.cat(evals).tolist()) == list(range(24))
    with pytest.raises(ValueError, match="divisible"):
        BatchLoader(ds, 7, (0.0,), (1.0,), train=True, world_size=2)


def test_cifar_archive_downloaded_and_unpacked(tmp_path, monkeypatch):
    import pickle
    import tarfile

    import cnnlab.data.datasets as datasets

    staging = tmp_path / "staging" / "cifar-10-batches-py"
    staging.mkdir(parents=True)
    x = np.random.default_rng(1).integers(0, 256, (2, 3072), dtype=np.uint8)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (staging / name).write_bytes(pickle.dumps({b"data": x, b"labels": [4, 2]}))
    (staging / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"n"] * 10}))
    archive = tmp_path / "c10.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(datasets, "_CIFAR10", datasets.Source(archive.as_uri(), "cifar-10-python.tar.gz", md5,
                                                              "cifar-10-batches-py"))
    ds = load_dataset("cifar10", "test", tmp_path / "data")
    assert ds.y.tolist() == [4, 2] and (tmp_path / "data" / "cifar10" / "cifar-10-batches-py").is_dir()


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("folder", ["FashionMNIST/raw", "fashion-mnist", "fashion_mnist", "."])
def test_idx_files_are_found_where_other_tools_keep_them(tmp_path, folder):
    where = tmp_path / folder
    where.mkdir(parents=True, exist_ok=True)
    (where / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((5, 4, 4))))
    (where / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.arange(5)))
    ds = load_dataset("fashion_mnist", "test", tmp_path, download=False)
    assert ds.x.shape == (5, 4, 4, 1) and ds.classes[0] == "T-shirt/top"


def test_the_error_names_only_the_missing_files(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"present")
    with pytest.raises(OfflineError) as err:
        load_dataset("fashion_mnist", "test", tmp_path, download=False)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value) and "t10k-images" not in str(err.value)
