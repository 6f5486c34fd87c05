"""A run directory's own bookkeeping: one training process at a time (a lock file), no leftovers of interrupted
writes, and the record in config.json of what a resume changed.

config.json holds ``config`` (the config the run started with, never rewritten), ``environment`` and
``changes``: one ``{"step", "key", "old", "new"}`` entry per setting a resume changed, in order. The run's
current config is the first with the changes applied (``run_config``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: the lock file is written for information, but not enforced
    fcntl = None  # type: ignore[assignment]

from cnnlab._io import atomic_write

LOCK_NAME = "train.lock"


class RunLockedError(OSError):
    """Another live process trains in this run directory."""


class RunLock:
    """An exclusive ``flock`` on ``run_dir/train.lock``, which names its owner (pid, host, start time).

    The operating system drops the lock when its process dies, however it dies, so a lock file left by a
    killed process is stale by construction: the next process takes it over and says so. A live owner's
    lock is refused with one line naming it.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> str | None:
        """Take the lock; returns a message when it took over a stale one, raises RunLockedError when live."""
        for _ in range(5):  # another process may delete the file between our open and our flock: try again
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # BlockingIOError: a live process holds it
                owner = _describe(_read(fd))
                os.close(fd)
                raise RunLockedError(f"{self.path.parent} is in use: {owner} trains in it; one process at a time "
                                     f"(wait for it to end, or stop it)") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _read(fd)
            mine = {"pid": os.getpid(), "host": platform.node(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            self._fd = fd
            if previous and previous.get("pid") != os.getpid():
                return (f"took over the stale lock of {_describe(previous)} in {self.path.parent}: that process "
                        f"ended without releasing it")
            return None
        raise RunLockedError(f"cannot lock {self.path}: other processes keep replacing it")

    def release(self) -> None:
        """Delete the lock file and drop the lock (nothing when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # closing drops the flock
        self._fd = None


def _read(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        value = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "another process"
    return f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('since')})"


def remove_temp_files(run_dir: Path) -> tuple[int, int]:
    """Delete what interrupted atomic writes left (``.NAME.*.tmp`` beside NAME, see ``cnnlab._io``) in the run
    directory and its checkpoints folder; returns (files, bytes). Call it only while holding the lock."""
    count = size = 0
    for folder in (run_dir, run_dir / "checkpoints"):
        if not folder.is_dir():
            continue
        for path in [*folder.glob(".*.tmp"), folder / ".write-test"]:
            try:
                if path.is_file():
                    n = path.stat().st_size
                    path.unlink()
                    count, size = count + 1, size + n
            except OSError:
                continue
    return count, size


# ---------------------------------------------------------------- config.json
def read_record(run_dir: str | Path) -> dict[str, Any]:
    """config.json of a run (``config``, ``environment``, ``changes``); FileNotFoundError when there is none."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} holds no run (no config.json); check the --resume path")
    try:
        record = json.loads(path.read_text())
        record["config"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a cnnlab run record ({exc}); it was edited or damaged") from None
    record.setdefault("changes", [])
    return record


def run_config(run_dir: str | Path, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's current config as a dict: the one it started with, then each recorded change in order."""
    record = record if record is not None else read_record(run_dir)
    config = dict(record["config"])
    for change in record.get("changes", []):
        if change.get("key") in config:
            config[change["key"]] = change["new"]
    return config


def add_changes(run_dir: Path, record: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Append ``entries`` to config.json's ``changes`` (its ``config`` stays the original)."""
    record = {**record, "changes": [*record.get("changes", []), *entries]}
    atomic_write(Path(run_dir) / "config.json", json.dumps(record, indent=2))


def source_commit() -> str | None:
    """The git commit of the cnnlab source that runs, when it runs from a clone (editable install); else None.

    Only cnnlab's own repository counts: a package installed into a virtual environment inside some other
    repository must not record that repository's commit."""
    here = Path(__file__).resolve().parents[1]  # .../src/cnnlab
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=here, capture_output=True, text=True,
                             timeout=5).stdout.strip()
        if not top or Path(top).resolve() / "src" / "cnnlab" != here:
            return None
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
