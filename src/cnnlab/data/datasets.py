"""Named datasets: where their official files live under ``data_dir``, how to fetch them, how to read them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnnlab.data.download import OfflineError, Opener, download, extract_tar
from cnnlab.data.formats import (
    ArrayDataset,
    load_cifar_binary,
    load_cifar_python,
    load_idx,
    load_image_folder,
    load_npz,
    load_svhn_mat,
)

DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "svhn", "imagefolder", "npz")
SPLITS = ("train", "test")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# class names from the Fashion-MNIST README (zalandoresearch/fashion-mnist)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


@dataclass(frozen=True)
class Source:
    """One official file: where to fetch it, its md5, and (for an archive) the folder it unpacks to."""

    url: str
    filename: str
    md5: str
    unpacks_to: str = ""


# URLs and md5 digests as listed by torchvision 0.29.1 (datasets/cifar.py, mnist.py, svhn.py)
_CIFAR10 = Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
                  "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py")
_CIFAR100 = Source("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
                   "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python")
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_MNIST_MD5 = {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
              "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
              "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
              "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"}
_FASHION_MD5 = {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"}
_SVHN = {"train": Source("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "train_32x32.mat",
                         "e26dedcc434d2e4c54c9b2d4a06d8373"),
         "test": Source("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "test_32x32.mat",
                        "eb5a983be6a315427106f1b164d9cef3")}


def _first(*candidates: Path) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def _fetch(sources: list[Source], into: Path, what: str, allow_download: bool, opener: Opener) -> None:
    """Download (and unpack) the sources; offline or forbidden: one error naming every missing file and where
    it goes. A failed download leaves no folder behind that it made."""
    listing = "; ".join(f"{s.url} -> {into / s.filename}" for s in sources if not (into / s.filename).exists())
    if listing and not allow_download:  # an archive already there is unpacked without a download
        raise OfflineError(f"{what} files are missing; download them ({listing}) or pass --data-dir PATH to a "
                           f"folder that holds them")
    made = [p for p in (into, *into.parents) if not p.exists()]  # deepest first, for the clean-up
    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OfflineError(f"{what} files are missing and {into} cannot be created ({exc.strerror}); put them "
                           f"there by hand ({listing}) or pass --data-dir PATH to a writable folder") from None
    try:
        for s in sources:
            target = into / s.filename
            if not target.exists():
                try:
                    download(s.url, target, s.md5, opener=opener)
                except OSError as exc:  # urllib's URLError, timeouts, refused connections
                    raise OfflineError(f"cannot download {what} ({exc}); put the files there by hand: {listing}, "
                                       f"or pass --data-dir PATH to a folder that holds them") from None
            if s.unpacks_to:
                extract_tar(target, into, s.unpacks_to)
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()  # only empty folders: nothing downloaded is lost
            except OSError:
                break
        raise


def _cifar(data_dir: Path, split: str, allow_download: bool, opener: Opener, hundred: bool) -> ArrayDataset:
    root = data_dir / ("cifar100" if hundred else "cifar10")
    py_dir = "cifar-100-python" if hundred else "cifar-10-batches-py"
    bin_dir = "cifar-100-binary" if hundred else "cifar-10-batches-bin"
    found = _first(root / py_dir, data_dir / py_dir)
    if found is None:
        bin_found = _first(root / bin_dir, data_dir / bin_dir)
        if bin_found is not None:  # the binary version is read when it is the one present
            if hundred:
                files = [bin_found / ("train.bin" if split == "train" else "test.bin")]
                return load_cifar_binary(files, label_bytes=2, label_index=1)
            files = ([bin_found / f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train"
                     else [bin_found / "test_batch.bin"])
            return load_cifar_binary(files, classes=CIFAR10_CLASSES)
        _fetch([_CIFAR100 if hundred else _CIFAR10], root, "CIFAR-100" if hundred else "CIFAR-10",
               allow_download, opener)
        found = root / py_dir
    if hundred:
        return load_cifar_python([found / split], found / "meta", label_key="fine_labels",
                                 names_key="fine_label_names")
    files = [found / f"data_batch_{i}" for i in range(1, 6)] if split == "train" else [found / "test_batch"]
    return load_cifar_python(files, found / "batches.meta")


def _idx(data_dir: Path, split: str, allow_download: bool, opener: Opener, fashion: bool) -> ArrayDataset:
    name, url, md5 = ("fashion_mnist", _FASHION_URL, _FASHION_MD5) if fashion else ("mnist", _MNIST_URL, _MNIST_MD5)
    prefix = "train" if split == "train" else "t10k"
    stems = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    root = data_dir / name
    # also where other tools keep them: torchvision's FashionMNIST/raw and MNIST/raw, a hyphenated folder
    folders = [root, data_dir / ("FashionMNIST" if fashion else "MNIST") / "raw", data_dir / name.replace("_", "-"),
               data_dir]
    found = [_first(*(f / n for f in folders for n in (s, f"{s}.gz"))) for s in stems]
    missing = [s for s, f in zip(stems, found) if f is None]
    if missing:
        _fetch([Source(url + f"{s}.gz", f"{s}.gz", md5[f"{s}.gz"]) for s in missing], root,
               "Fashion-MNIST" if fashion else "MNIST", allow_download, opener)
        found = [f if f is not None else root / f"{s}.gz" for s, f in zip(stems, found)]
    return load_idx(found[0], found[1], FASHION_CLASSES if fashion else None)


def _svhn(data_dir: Path, split: str, allow_download: bool, opener: Opener) -> ArrayDataset:
    source = _SVHN[split]
    root = data_dir / "svhn"
    found = _first(root / source.filename, data_dir / source.filename)
    if found is None:
        _fetch([source], root, "SVHN", allow_download, opener)
        found = root / source.filename
    return load_svhn_mat(found)


def load_dataset(name: str, split: str = "train", data_dir: str | Path = "data", file: str | Path | None = None,
                 download: bool = True, opener: Opener | None = None,
                 image_size: int | None = None) -> ArrayDataset:
    """Load split ``train`` or ``test`` of a named dataset from its official files under ``data_dir``.

    Missing official files are downloaded (checksum-verified) when ``download`` is true; ``npz`` and
    ``imagefolder`` read ``file`` (an .npz, or a folder of class sub-folders) instead.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    import urllib.request

    opener = opener or urllib.request.urlopen
    data_dir = Path(data_dir)
    if name in ("npz", "imagefolder"):
        if file is None:
            what = "an .npz file" if name == "npz" else "a folder"
            raise ValueError(f"--data {name} needs --{split}-file PATH ({what})")
        return load_npz(file) if name == "npz" else load_image_folder(file, size=image_size)
    if name in ("cifar10", "cifar100"):
        return _cifar(data_dir, split, download, opener, hundred=name == "cifar100")
    if name in ("mnist", "fashion_mnist"):
        return _idx(data_dir, split, download, opener, fashion=name == "fashion_mnist")
    return _svhn(data_dir, split, download, opener)
