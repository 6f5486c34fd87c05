"""Readers for the official file formats of the small image sets; every reader returns an ``ArrayDataset``.

All images come back as uint8 arrays (N, H, W, C), labels as int64 (N,). Nothing here unpickles arbitrary
objects: the CIFAR pickles are read by an unpickler that only admits plain containers and numpy arrays.
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ArrayDataset:
    """Images as uint8 (N, H, W, C), labels as int64 (N,), and the class names (index = label).

    ``classes`` named by metadata (a file's class list, a data set's official names, folder names) bound the
    labels: one outside 0..len(classes)-1 is an error naming ``source`` (the file it came from), the label and
    its row. Without names (``classes=()``) the classes are 0..max(label), and ``inferred_classes`` says so.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    source: str = ""  # the file or folder the data came from, for messages
    inferred_classes: bool = False  # True when no metadata named the classes: they are 0..max(label)

    def __post_init__(self) -> None:
        where = f"{self.source}: " if self.source else ""
        if self.x.dtype != np.uint8 or self.x.ndim != 4:
            raise ValueError(f"{where}images must be uint8 of shape (N, H, W, C), got {self.x.dtype} {self.x.shape}")
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise ValueError(f"{where}labels must have shape ({len(self.x)},), got {self.y.shape}")
        if not np.issubdtype(self.y.dtype, np.integer):
            raise ValueError(f"{where}labels must be integers, got dtype {self.y.dtype}")
        if not self.classes:
            object.__setattr__(self, "classes", _default_classes(self.y))
            object.__setattr__(self, "inferred_classes", True)
        count = None if self.inferred_classes else len(self.classes)
        check_labels(self.y, count, self.source, f"its metadata names {len(self.classes)} classes")

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n: int) -> ArrayDataset:
        """The first ``n`` examples (for quick runs)."""
        return dataclasses.replace(self, x=self.x[:n], y=self.y[:n])


def check_labels(y: np.ndarray, num_classes: int | None, source: str = "", why: str = "") -> None:
    """Raise unless every label is in 0..num_classes-1 (None: only >= 0); the message names ``source``, the
    first bad label and its row, and ``why`` the class count is what it is."""
    bad = np.flatnonzero(y < 0) if num_classes is None else np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        row = int(bad[0])
        where = f"{source}: " if source else ""
        allowed = "a class index >= 0" if num_classes is None else f"outside 0..{num_classes - 1}"
        because = f" ({why})" if why and num_classes is not None else ""
        verb = "is not" if num_classes is None else "is"
        raise CorruptDataError(f"{where}label {int(y[row])} at row {row} {verb} {allowed}{because}; fix the labels "
                               f"or the class list")


class CorruptDataError(ValueError):
    """A data file exists but its content is not what its format promises."""


def _corrupt(path: Path, why: str) -> CorruptDataError:
    return CorruptDataError(f"{path}: {why}; the file is damaged or not in the expected format, "
                            f"replace it with a fresh copy of the official file")


def _need(path: Path, what: str = "data file") -> Path:
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the file itself")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist; put the file there or pass another --data-dir")
    return path


def _default_classes(y: np.ndarray) -> tuple[str, ...]:
    return tuple(str(i) for i in range(int(y.max()) + 1 if len(y) else 0))


# ---------------------------------------------------------------- npz (the format of ../shared/data)
def load_npz(path: str | Path) -> ArrayDataset:
    """An ``.npz`` with ``x`` uint8 (N, H, W, C), ``y`` int (N,) and optionally ``classes``; no pickles."""
    path = _need(Path(path), "npz file (--train-file / --test-file)")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise _corrupt(path, f"it holds arrays {sorted(f.files)} but needs 'x' and 'y'")
            x, y = f["x"], f["y"]
            classes = tuple(str(c) for c in f["classes"]) if "classes" in f else None
    except CorruptDataError:
        raise
    except (OSError, ValueError, zlib.error, EOFError, zipfile.BadZipFile) as exc:  # truncated: BadZipFile, CRC
        raise _corrupt(path, f"cannot be read as .npz ({exc})") from None
    if x.dtype != np.uint8:
        raise _corrupt(path, f"'x' must be uint8, got {x.dtype}")
    if x.ndim == 3:  # grey images stored without a channel axis
        x = x[..., None]
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or not np.issubdtype(y.dtype, np.integer):
        raise _corrupt(path, f"expected x (N, H, W, C) and integer y (N,), got x {x.shape} and y {y.shape} {y.dtype}")
    return ArrayDataset(np.ascontiguousarray(x), y.astype(np.int64), classes or (), source=str(path))


# ---------------------------------------------------------------- CIFAR python pickles
class _SafeUnpickler(pickle.Unpickler):
    """Admits only what the CIFAR pickles contain: dicts, lists, strings, bytes and numpy arrays."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    path = _need(path)
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise _corrupt(path, f"cannot be unpickled ({exc})") from None
    if not isinstance(obj, dict):
        raise _corrupt(path, "it does not hold a dict")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _names(values: Sequence) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def _chw_rows_to_nhwc(data: np.ndarray, path: Path) -> np.ndarray:
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise _corrupt(path, f"'data' must have shape (N, 3072), got {data.shape}")
    # each row is the red plane, then green, then blue, each 32x32 in row-major order (CIFAR page)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def load_cifar_python(files: Sequence[str | Path], meta: str | Path | None, label_key: str = "labels",
                      names_key: str = "label_names") -> ArrayDataset:
    """CIFAR-10 (``data_batch_*``, ``test_batch``) or CIFAR-100 (``train``, ``test``; ``fine_labels``) pickles."""
    classes = _names(_unpickle(Path(meta))[names_key]) if meta is not None else ()
    xs, ys = [], []
    for file in files:
        path = Path(file)
        batch = _unpickle(path)
        if "data" not in batch or label_key not in batch:
            raise _corrupt(path, f"the batch lacks 'data' or {label_key!r} (keys: {sorted(batch)})")
        x = _chw_rows_to_nhwc(batch["data"], path)
        y = np.asarray(batch[label_key], dtype=np.int64)
        if len(y) != len(x):
            raise _corrupt(path, f"{len(x)} images but {len(y)} labels")
        check_labels(y, len(classes) if classes else None, str(path), f"{meta} names {len(classes)} classes")
        xs.append(x)
        ys.append(y)
    return ArrayDataset(np.concatenate(xs), np.concatenate(ys), classes, source=str(Path(files[0]).parent))


# ---------------------------------------------------------------- CIFAR binary
def load_cifar_binary(files: Sequence[str | Path], label_bytes: int = 1, label_index: int = 0,
                      classes: Sequence[str] | None = None) -> ArrayDataset:
    """CIFAR binary batches: records of ``label_bytes`` label bytes then 3072 pixel bytes (CHW).

    CIFAR-10 has one label byte; CIFAR-100 has two (coarse, fine): use ``label_index=1`` for fine labels.
    """
    record = label_bytes + 3072
    xs, ys = [], []
    for file in files:
        path = _need(Path(file))
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise _corrupt(path, f"its size {raw.size} is not a multiple of the {record}-byte record")
        rows = raw.reshape(-1, record)
        ys.append(rows[:, label_index].astype(np.int64))
        check_labels(ys[-1], len(classes) if classes else None, str(path), f"the data set has {len(classes or ())} "
                     f"classes")
        xs.append(_chw_rows_to_nhwc(rows[:, label_bytes:], path))
    return ArrayDataset(np.concatenate(xs), np.concatenate(ys), tuple(classes or ()),
                        source=str(Path(files[0]).parent))


# ---------------------------------------------------------------- idx (MNIST, Fashion-MNIST)
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | Path) -> np.ndarray:
    """One idx file (gzipped when the name ends in .gz): magic 0 0 type ndim, big-endian dims, data."""
    path = _need(Path(path))
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise _corrupt(path, f"cannot be decompressed ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise _corrupt(path, "it does not start with an idx magic number")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _corrupt(path, "the idx header is truncated")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise _corrupt(path, f"the header promises {expected} data bytes for shape {dims}, "
                             f"the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def load_idx(images: str | Path, labels: str | Path, classes: Sequence[str] | None = None) -> ArrayDataset:
    """MNIST-style images (N, H, W) and labels (N,) idx files."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
        raise _corrupt(Path(images), f"images {x.shape} {x.dtype} and labels {y.shape} do not pair up")
    y = y.astype(np.int64)
    return ArrayDataset(np.ascontiguousarray(x[..., None]), y, tuple(classes or ()), source=str(labels))


# ---------------------------------------------------------------- ImageFolder
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".tif", ".tiff", ".webp")


def load_image_folder(root: str | Path, size: int | tuple[int, int] | None = None,
                      mode: str = "RGB") -> ArrayDataset:
    """``root/<class>/<image>``: classes in sorted order; all images must share a size unless ``size`` is given."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if root.is_file():
        raise NotADirectoryError(f"image folder {root} is a file; --data imagefolder needs a folder with one "
                                 f"sub-folder of images per class")
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; it must hold one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise FileNotFoundError(f"image folder {root} has no class sub-folders (expected {root}/<class>/<image>)")
    target = (size, size) if isinstance(size, int) else size
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                with Image.open(file) as im:
                    im = im.convert(mode)
                    if target is not None and im.size != (target[1], target[0]):
                        im = im.resize((target[1], target[0]), Image.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError) as exc:
                raise _corrupt(file, f"cannot be decoded as an image ({exc})") from None
            if images and arr.shape != images[0].shape:
                raise ValueError(f"{file} is {arr.shape[1]}x{arr.shape[0]} but earlier images are "
                                 f"{images[0].shape[1]}x{images[0].shape[0]}; pass size= to resize them all")
            images.append(arr if arr.ndim == 3 else arr[..., None])
            labels.append(label)
    if not images:
        raise FileNotFoundError(f"image folder {root} holds no images with extensions {IMAGE_EXTENSIONS}")
    return ArrayDataset(np.stack(images), np.asarray(labels, dtype=np.int64), tuple(classes), source=str(root))


# ---------------------------------------------------------------- MATLAB v5 .mat (SVHN)
_MI = {1: np.int8, 2: np.uint8, 3: np.dtype("<i2"), 4: np.dtype("<u2"), 5: np.dtype("<i4"), 6: np.dtype("<u4"),
       7: np.dtype("<f4"), 9: np.dtype("<f8"), 12: np.dtype("<i8"), 13: np.dtype("<u8")}
_MI_MATRIX, _MI_COMPRESSED = 14, 15


def _mat_elements(buf: bytes, path: Path):
    """Yield (type, payload) of the data elements in ``buf`` (little-endian, 8-byte aligned)."""
    pos = 0
    while pos + 8 <= len(buf):
        mtype, nbytes = struct.unpack_from("<II", buf, pos)
        if mtype >> 16:  # small data element: size in the upper half, data in the same 8 bytes
            mtype, nbytes = mtype & 0xFFFF, mtype >> 16
            yield mtype, buf[pos + 4:pos + 4 + nbytes]
            pos += 8
            continue
        if pos + 8 + nbytes > len(buf):
            raise _corrupt(path, "a MATLAB data element runs past the end of the file")
        yield mtype, buf[pos + 8:pos + 8 + nbytes]
        pos += 8 + nbytes
        if mtype != _MI_COMPRESSED:
            pos += (-nbytes) % 8


def _mat_matrix(payload: bytes, path: Path) -> tuple[str, np.ndarray] | None:
    parts = list(_mat_elements(payload, path))
    if len(parts) < 4:
        raise _corrupt(path, "a MATLAB matrix has too few sub-elements")
    flags = np.frombuffer(parts[0][1], dtype="<u4")
    if flags[0] & 0xFF not in range(6, 16) or flags[0] & 0x800:  # numeric classes only, no complex
        return None
    dims = tuple(int(d) for d in np.frombuffer(parts[1][1], dtype="<i4"))
    name = parts[2][1].decode("ascii", "replace")
    mtype, data = parts[3]
    if mtype not in _MI:
        raise _corrupt(path, f"unsupported MATLAB data type {mtype} in variable {name!r}")
    arr = np.frombuffer(data, dtype=_MI[mtype])
    if arr.size != int(np.prod(dims)):
        raise _corrupt(path, f"variable {name!r} has {arr.size} values for shape {dims}")
    return name, arr.reshape(dims, order="F")  # MATLAB stores arrays column-major


def read_mat_v5(path: str | Path) -> dict[str, np.ndarray]:
    """The numeric arrays of a MATLAB level-5 .mat file (the SVHN format); cells, structs, sparse skipped."""
    path = _need(Path(path))
    raw = path.read_bytes()
    if len(raw) < 128 or raw[126:128] != b"IM":
        if raw[:19] == b"MATLAB 7.3 MAT-file" or raw[:8] == b"\x89HDF\r\n\x1a\n":
            raise _corrupt(path, "it is a MATLAB 7.3 (HDF5) file; save it as MATLAB v5 (-v7) instead")
        raise _corrupt(path, "it is not a little-endian MATLAB v5 .mat file")
    out: dict[str, np.ndarray] = {}
    for mtype, payload in _mat_elements(raw[128:], path):
        if mtype == _MI_COMPRESSED:
            try:
                payload = zlib.decompress(payload)
            except zlib.error as exc:
                raise _corrupt(path, f"a compressed element cannot be inflated ({exc})") from None
            mtype, payload = next(iter(_mat_elements(payload, path)))
        if mtype == _MI_MATRIX:
            item = _mat_matrix(payload, path)
            if item is not None:
                out[item[0]] = item[1]
    return out


def load_svhn_mat(path: str | Path) -> ArrayDataset:
    """SVHN cropped digits (``train_32x32.mat``): X (32, 32, 3, N), y (N, 1) with digit 0 stored as 10."""
    path = Path(path)
    arrays = read_mat_v5(path)
    if "X" not in arrays or "y" not in arrays:
        raise _corrupt(path, f"it holds variables {sorted(arrays)} but SVHN needs 'X' and 'y'")
    x, y = arrays["X"], arrays["y"].reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[-1] != len(y):
        raise _corrupt(path, f"X {x.shape} and y {y.shape} do not pair up")
    y = np.where(y == 10, 0, y)  # SVHN labels digit 0 as 10 (SVHN page, "Format 2")
    return ArrayDataset(np.ascontiguousarray(x.transpose(3, 0, 1, 2).astype(np.uint8)), y,
                        tuple(str(i) for i in range(10)), source=str(path))

