"""Each official format written byte by byte by the test, then read back by cnnlab.data."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from cnnlab.data import (
    CorruptDataError,
    load_cifar_binary,
    load_cifar_python,
    load_dataset,
    load_idx,
    load_image_folder,
    load_npz,
    load_svhn_mat,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _images(n: int, h: int = 32, w: int = 32, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


def _cifar_rows(x: np.ndarray) -> np.ndarray:
    # the CIFAR layout written out by hand: all red values row by row, then green, then blue
    rows = np.empty((len(x), 3072), dtype=np.uint8)
    for i, img in enumerate(x):
        rows[i] = np.concatenate([img[:, :, ch].reshape(-1) for ch in range(3)])
    return rows


def test_npz_round_trip(tmp_path):
    x, y = _images(5), np.array([0, 1, 2, 1, 0])
    np.savez_compressed(tmp_path / "d.npz", x=x, y=y, classes=np.array(["a", "b", "c"]))
    ds = load_npz(tmp_path / "d.npz")
    assert np.array_equal(ds.x, x) and np.array_equal(ds.y, y) and ds.classes == ("a", "b", "c")


def test_npz_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "nokey.npz", images=_images(2))
    with pytest.raises(CorruptDataError, match="needs 'x' and 'y'"):
        load_npz(tmp_path / "nokey.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file at all")
    with pytest.raises(CorruptDataError, match="cannot be read"):
        load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "float.npz", x=np.zeros((2, 4, 4, 3), np.float32), y=np.zeros(2, int))
    with pytest.raises(CorruptDataError, match="uint8"):
        load_npz(tmp_path / "float.npz")


def _write_cifar10_python(root: Path, x: np.ndarray, y: np.ndarray) -> None:
    root.mkdir(parents=True)
    per = len(x) // 6  # five training batches and one test batch
    for i in range(6):
        name = f"data_batch_{i + 1}" if i < 5 else "test_batch"
        part = slice(i * per, (i + 1) * per)
        with open(root / name, "wb") as f:
            pickle.dump({b"data": _cifar_rows(x[part]), b"labels": [int(v) for v in y[part]]}, f, protocol=2)
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, f, protocol=2)


def test_cifar10_python_layout(tmp_path):
    x, y = _images(12), np.arange(12) % 10
    _write_cifar10_python(tmp_path / "cifar10" / "cifar-10-batches-py", x, y)
    train = load_dataset("cifar10", "train", tmp_path, download=False)
    test = load_dataset("cifar10", "test", tmp_path, download=False)
    assert np.array_equal(train.x, x[:10]) and np.array_equal(train.y, y[:10])
    assert np.array_equal(test.x, x[10:]) and train.classes[3] == "class3"


def test_cifar_pickle_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(tmp_path / "batch", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(CorruptDataError, match="refusing to load"):
        load_cifar_python([tmp_path / "batch"], None)


def test_cifar100_python(tmp_path):
    x, fine = _images(4), np.array([99, 0, 42, 7])
    with open(tmp_path / "train", "wb") as f:
        pickle.dump({b"data": _cifar_rows(x), b"fine_labels": fine.tolist(), b"coarse_labels": [1, 2, 3, 4]}, f)
    with open(tmp_path / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f)
    ds = load_cifar_python([tmp_path / "train"], tmp_path / "meta", label_key="fine_labels",
                           names_key="fine_label_names")
    assert np.array_equal(ds.x, x) and np.array_equal(ds.y, fine) and ds.num_classes == 100


def test_cifar_binary_10_and_100(tmp_path):
    x, y = _images(6), np.array([1, 2, 3, 4, 5, 9])
    rows = _cifar_rows(x)
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    for i in range(1, 6):
        (root / f"data_batch_{i}.bin").write_bytes(b"".join(bytes([y[i - 1]]) + rows[i - 1].tobytes()
                                                             for _ in range(1)))
    (root / "test_batch.bin").write_bytes(bytes([y[5]]) + rows[5].tobytes())
    train = load_dataset("cifar10", "train", tmp_path, download=False)
    assert np.array_equal(train.x, x[:5]) and np.array_equal(train.y, y[:5]) and train.classes[0] == "airplane"
    # CIFAR-100 records carry (coarse, fine) labels
    (tmp_path / "c100.bin").write_bytes(b"".join(bytes([3, 77]) + r.tobytes() for r in rows[:2]))
    ds = load_cifar_binary([tmp_path / "c100.bin"], label_bytes=2, label_index=1)
    assert ds.y.tolist() == [77, 77] and np.array_equal(ds.x, x[:2])
    (tmp_path / "short.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(CorruptDataError, match="not a multiple"):
        load_cifar_binary([tmp_path / "short.bin"])


def _idx_bytes(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_mnist_layouts(tmp_path, gz, name):
    x, y = _images(7, 28, 28, 1)[..., 0], np.array([0, 1, 2, 3, 4, 5, 9])
    root = tmp_path / name
    root.mkdir()
    for stem, arr in [("train-images-idx3-ubyte", x), ("train-labels-idx1-ubyte", y)]:
        data = _idx_bytes(arr)
        (root / (stem + (".gz" if gz else ""))).write_bytes(gzip.compress(data) if gz else data)
    ds = load_dataset(name, "train", tmp_path, download=False)
    assert ds.x.shape == (7, 28, 28, 1) and np.array_equal(ds.x[..., 0], x) and np.array_equal(ds.y, y)
    assert (ds.classes[9] == "Ankle boot") == (name == "fashion_mnist")


def test_idx_truncated(tmp_path):
    data = _idx_bytes(_images(3, 28, 28, 1)[..., 0])
    (tmp_path / "img").write_bytes(data[:-10])
    (tmp_path / "lab").write_bytes(_idx_bytes(np.array([1, 2, 3])))
    with pytest.raises(CorruptDataError, match="promises"):
        load_idx(tmp_path / "img", tmp_path / "lab")
    (tmp_path / "bad.gz").write_bytes(b"not gzip")
    with pytest.raises(CorruptDataError, match="decompressed"):
        load_idx(tmp_path / "bad.gz", tmp_path / "lab")


def _mat_element(mtype: int, payload: bytes) -> bytes:
    return struct.pack("<II", mtype, len(payload)) + payload + b"\0" * ((-len(payload)) % 8)


def _mat_matrix(name: str, arr: np.ndarray, mi_type: int, class_id: int) -> bytes:
    # MATLAB level-5 matrix: array flags, dimensions, name, real part (column-major)
    body = (_mat_element(6, struct.pack("<II", class_id, 0))
            + _mat_element(5, struct.pack(f"<{arr.ndim}i", *arr.shape))
            + _mat_element(1, name.encode())
            + _mat_element(mi_type, arr.tobytes(order="F")))
    return _mat_element(14, body)


def _write_mat(path: Path, variables: list[bytes], compress: bool) -> None:
    header = b"MATLAB 5.0 MAT-file, written by a cnnlab test".ljust(116) + b"\0" * 8 + struct.pack("<H", 0x0100) + b"IM"
    out = header
    for v in variables:
        if compress:
            packed = zlib.compress(v)
            out += struct.pack("<II", 15, len(packed)) + packed
        else:
            out += v
    path.write_bytes(out)


@pytest.mark.parametrize("compress", [True, False])
def test_svhn_mat_v5(tmp_path, compress):
    x = _images(3)  # N, H, W, C
    labels = np.array([[10], [1], [5]], dtype=np.float64)  # SVHN stores digit 0 as 10, y as doubles
    mat_x = np.ascontiguousarray(x.transpose(1, 2, 3, 0))  # SVHN's X is (H, W, C, N)
    root = tmp_path / "svhn"
    root.mkdir()
    _write_mat(root / "test_32x32.mat", [_mat_matrix("X", mat_x, 2, 9), _mat_matrix("y", labels, 9, 6)], compress)
    ds = load_dataset("svhn", "test", tmp_path, download=False)
    assert np.array_equal(ds.x, x) and ds.y.tolist() == [0, 1, 5]
    (root / "bad.mat").write_bytes(b"MATLAB 7.3 MAT-file" + b"\0" * 200)
    with pytest.raises(CorruptDataError, match="7.3"):
        load_svhn_mat(root / "bad.mat")


def test_image_folder(tmp_path):
    from PIL import Image

    x = _images(4, 8, 8, 3)
    for i, cls in enumerate(["cat", "dog", "cat", "dog"]):
        (tmp_path / cls).mkdir(exist_ok=True)
        Image.fromarray(x[i]).save(tmp_path / cls / f"{i}.png")
    ds = load_image_folder(tmp_path)
    assert ds.classes == ("cat", "dog") and ds.y.tolist() == [0, 0, 1, 1]
    assert np.array_equal(ds.x[0], x[0]) and np.array_equal(ds.x[1], x[2])
    (tmp_path / "dog" / "9.png").write_bytes(b"broken png")
    with pytest.raises(CorruptDataError, match="cannot be decoded"):
        load_image_folder(tmp_path)


@pytest.mark.skipif(not (SHARED / "cifar10_test_first1000.npz").exists(), reason="shared data not present")
def test_real_cifar10_slice():
    ds = load_npz(SHARED / "cifar10_test_first1000.npz")
    # the known start of the official test_batch labels (shared/data/README.md)
    assert ds.x.shape == (1000, 32, 32, 3) and ds.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert ds.classes[0] == "airplane"
