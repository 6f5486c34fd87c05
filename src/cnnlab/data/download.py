"""Download of official data files: temp file, checksum, then rename, so a dataset is never half-written."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from cnnlab._io import atomic_path

Opener = Callable[..., object]


class ChecksumError(ValueError):
    """A file's digest differs from the official one."""


class OfflineError(FileNotFoundError):
    """The files are missing and could not be downloaded."""


def file_digest(path: str | Path, algorithm: str = "md5") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_digest(path: str | Path, expected: str) -> None:
    """Raise ``ChecksumError`` unless the file's md5 (32 hex digits) or sha256 (64) equals ``expected``."""
    algorithm = "sha256" if len(expected) == 64 else "md5"
    actual = file_digest(path, algorithm)
    if actual != expected.lower():
        raise ChecksumError(f"{path}: {algorithm} is {actual}, expected {expected}; the file is damaged or not "
                            f"the official one, delete it and download it again")


def download(url: str, dest: str | Path, expected: str, opener: Opener = urllib.request.urlopen,
             timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest`` through a temp file in the same folder; verify; rename. Returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest, suffix=".part") as tmp:  # verified before it takes the real name
        with open(tmp, "wb") as out, opener(url, timeout=timeout) as response:  # type: ignore[attr-defined]
            shutil.copyfileobj(response, out, 1 << 20)
        check_digest(tmp, expected)
    return dest


def extract_tar(archive: str | Path, into: str | Path, top: str) -> Path:
    """Extract ``archive`` (whose members live under ``top/``) into ``into``; the folder appears whole or not at all."""
    into = Path(into)
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}.", dir=into))
    try:
        _extract(archive, tmp)
        if not (tmp / top).is_dir():
            raise ValueError(f"{archive} does not contain the folder {top}/; it is not the official archive")
        os.replace(tmp / top, into / top)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into / top


def _extract(archive: str | Path, tmp: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, filter="data")  # the "data" filter refuses links and paths outside tmp
            else:  # Python before 3.10.12 / 3.11.4: the same rule by hand
                for member in tar.getmembers():
                    parts = Path(member.name).parts
                    if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                        raise ValueError(f"{archive} holds an unsafe entry {member.name!r}; it is not the official "
                                         f"archive")
                tar.extractall(tmp)
    except (tarfile.TarError, EOFError, zlib.error) as exc:  # a truncated or damaged download
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")  # ReadError lists methods
        raise ValueError(f"{archive} cannot be unpacked ({why}); it is damaged: delete it and download it "
                         f"again") from None

