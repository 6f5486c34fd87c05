"""Data: the small image sets from their official files, in-memory batches and batched augmentation."""

from cnnlab.data.datasets import DATASETS, load_dataset
from cnnlab.data.download import ChecksumError, OfflineError, check_digest, download
from cnnlab.data.formats import (
    ArrayDataset,
    CorruptDataError,
    check_labels,
    load_cifar_binary,
    load_cifar_python,
    load_idx,
    load_image_folder,
    load_npz,
    load_svhn_mat,
    read_idx,
    read_mat_v5,
)

# the loader needs torch: imported on first use, so that `cnnlab --help` (which lists the data sets) stays fast
_LOADER = ("Augment", "BatchLoader", "channel_stats", "crop_flip", "normalize")


def __getattr__(name: str) -> object:
    if name in _LOADER:
        from cnnlab.data import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'cnnlab.data' has no attribute {name!r}")

__all__ = [
    "DATASETS", "ArrayDataset", "Augment", "BatchLoader", "ChecksumError", "CorruptDataError", "OfflineError",
    "channel_stats", "check_digest", "check_labels", "crop_flip", "download", "load_cifar_binary", "load_cifar_python",
    "load_dataset", "load_idx", "load_image_folder", "load_npz", "load_svhn_mat", "normalize", "read_idx",
    "read_mat_v5",
]
