"""A run directory's own bookkeeping: one training process at a time (a lock file), no leftovers of interrupted
writes, no run written over another, the record in config.json of the run's environment and of what a resume
changed, and the checks of a resume: which settings may change, which checkpoint the run continues from, whether
it is finished already, and how long its lr schedule stays. The Trainer makes them before it builds anything, so
a resume that cannot go on fails in one line, changing nothing.

config.json holds ``config`` (the config the run started with, never rewritten), ``environment`` and
``changes``: one ``{"step", "key", "old", "new"}`` entry per setting a resume changed, in order. The run's
current config is the first with the changes applied (``run_config``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

try:
    import fcntl
except ImportError:  # Windows: the lock file is written for information, but not enforced
    fcntl = None  # type: ignore[assignment]

from cnnlab import __version__
from cnnlab._io import atomic_write
from cnnlab.models import check_trusted
from cnnlab.train.checkpoint import first_non_finite, load_checkpoint
from cnnlab.train.components import first_line
from cnnlab.train.config import TrainConfig, from_dict
from cnnlab.train.distributed import check_world_change
from cnnlab.train.optim import OPTIMIZATION_KEYS, length_dependent, lr_at

log = logging.getLogger(__name__)

LOCK_NAME = "train.lock"

# none of these changes what the run trains: data_dir only says where the official files are (--data says which),
# e.g. each machine's own copy; tta only how later evaluations (and so the best checkpoint) see the test images
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "checkpoint_every", "eval_every", "compile",
                     "tensorboard", "data_dir", "tta", "eval_batch_size")


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


def open_run_dir(run_dir: Path, lock: RunLock, *, fresh: bool) -> None:
    """Make ``run_dir`` (``fresh``: for a new run, never over another run's files), take its ``lock``, and
    remove what interrupted writes left behind. Rank 0's to call."""
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        taken = lock.acquire()
        probe = run_dir / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if isinstance(exc, RunLockedError):
            raise
        raise PermissionError(f"cannot write to run directory {run_dir} ({exc.strerror}); "
                              f"choose a writable --out") from None
    if taken:
        log.warning("%s", taken)
    if fresh:
        if (run_dir / "config.json").exists():
            raise FileExistsError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose "
                                  f"another --out")
        found = [name for name in ("checkpoints/last.safetensors", "checkpoints/best.safetensors", "metrics.jsonl",
                                   "summary.json") if (run_dir / name).exists()]
        if found:
            raise FileExistsError(f"{run_dir} holds {', '.join(found)} but no config.json, so it cannot be "
                                  f"continued; choose another --out (nothing was changed)")
    files, size = remove_temp_files(run_dir)
    if files:
        log.info("removed %d temporary file(s) (%.1f MB) left by interrupted writes in %s", files, size / 1e6,
                 run_dir)


# ---------------------------------------------------------------- config.json
def versions() -> dict[str, Any]:
    """What every record names of the code that ran: cnnlab's version and git commit, torch's and Python's."""
    return {"cnnlab": __version__, "git_commit": source_commit(), "torch": torch.__version__,
            "python": platform.python_version()}


def environment(device: torch.device, precision: torch.dtype | None, processes: int) -> dict[str, Any]:
    """What config.json records of where a run trains: versions, commit, device, autocast, processes, host."""
    autocast = str(precision).replace("torch.", "") if precision else "fp32"
    return {**versions(), "device": str(device), "autocast": autocast, "processes": processes,
            "threads": torch.get_num_threads(), "host": platform.node()}


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


# ---------------------------------------------------------------- resuming
class RunFinishedError(ValueError):
    """``resume`` of a run that has finished: it is left as it is (a larger epochs / max_steps extends it)."""


def check_allowed_changes(allow_changes: Collection[str]) -> None:
    """Only optimisation settings need leave to change; anything else named is a mistake."""
    unknown = sorted(set(allow_changes) - set(OPTIMIZATION_KEYS))
    if unknown:
        raise ValueError(f"--allow-change {','.join(unknown)}: not an optimisation setting; it takes "
                         f"{', '.join(OPTIMIZATION_KEYS)} ({', '.join(RESUMABLE_CHANGES)} change without it)")


def resumable(run_dir: Path, resume: bool, notes: list[str]) -> bool:
    """Whether ``run_dir`` holds a run to resume: one that stopped before writing its config.json starts afresh
    (said in ``notes``), whether asked to resume or not."""
    recorded = (run_dir / "config.json").is_file()
    if resume and not recorded and not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} holds no run (no such folder); check the --resume path")
    if not recorded and (resume or (run_dir / "checkpoints").is_dir()):
        notes.append(f"{run_dir} has no config.json: its run stopped before set-up finished; starting it afresh")
    return resume and recorded


def resume_config(run_dir: Path, config: TrainConfig, allow_changes: Collection[str], *,
                  trusted: bool) -> tuple[TrainConfig, dict[str, Any], list[dict[str, Any]]]:
    """The stored config with the changes ``config`` asks for, config.json's record, and those changes
    (``{"key", "old", "new"}``). ``trusted``: the stored model may be a callable imported on the file's word."""
    record = read_record(run_dir)
    stored = from_dict(run_config(run_dir, record))
    check_trusted(stored.model, str(run_dir / "config.json"), trusted=trusted)
    now, before = config.to_dict(), stored.to_dict()
    changed = {k: v for k, v in now.items() if v != before[k]}
    if now["schedule"] != "step" and before["schedule"] != "step":
        changed.pop("milestones", None)  # unused without a step schedule (and their default has changed)
    unasked = sorted(k for k in changed if k in OPTIMIZATION_KEYS and k not in allow_changes)
    if unasked:
        raise ValueError(f"cannot change {', '.join(unasked)} when resuming {run_dir} unasked: pass "
                         f"--allow-change {','.join(unasked)} (Python: allow_changes=) to change it from this "
                         f"step on, recorded in config.json")
    fixed = sorted(set(changed) - set(RESUMABLE_CHANGES) - set(OPTIMIZATION_KEYS))
    if fixed:
        raise ValueError(f"cannot change {', '.join(fixed)} when resuming {run_dir} (only "
                         f"{', '.join(RESUMABLE_CHANGES)} may change, optimisation settings with "
                         f"--allow-change); start a new run instead")
    changes = [{"key": k, "old": before[k], "new": v} for k, v in changed.items()]
    return stored.replace(**changed), record, changes


def resume_checkpoint(run_dir: Path, notes: list[str]) -> tuple[dict, dict] | None:
    """(tensors, meta) of last.safetensors, or of best.safetensors (said in ``notes``) when last is missing,
    unreadable or not finite; None when the run stopped before its first checkpoint."""
    problems: list[str] = []
    for name in ("last", "best"):
        path = run_dir / "checkpoints" / f"{name}.safetensors"
        if not path.exists():
            problems.append(f"{path} is missing")
            continue
        try:
            tensors, meta = load_checkpoint(path)
        except ValueError as exc:
            problems.append(first_line(exc))
            continue
        bad = first_non_finite({k: v for k, v in tensors.items() if k.startswith(("model/", "optim/", "ema/"))})
        if bad is not None:
            problems.append(f"{path} holds NaN or infinity in {bad}")
            continue
        if name == "best":
            notes.append(f"{problems[0]}; resuming from the intact {path} (step {meta['step']}) instead")
        return tensors, meta
    if all(p.endswith("is missing") for p in problems):
        return None  # stopped before its first checkpoint: starts at step 0 with its stored config
    raise ValueError(f"{'; '.join(problems)}: no intact checkpoint to resume {run_dir} from; start "
                     f"afresh with another --out")


def run_finished(run_dir: str | Path) -> bool:
    """Whether the run in ``run_dir`` finished: its summary.json says so (a missing or unreadable one: no)."""
    try:
        return bool(json.loads((Path(run_dir) / "summary.json").read_text()).get("finished"))
    except (OSError, ValueError, AttributeError):
        return False


def check_not_finished(run_dir: Path, cfg: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> None:
    """A finished run (no steps left, and summary.json says so) is left as it is."""
    if step >= total_steps and run_finished(run_dir):
        raise RunFinishedError(f"{run_dir} is finished ({step} of {total_steps} steps) and is left as it is; "
                               f"extend it with a larger --epochs (now {cfg.epochs}, {steps_per_epoch} steps "
                               f"each) or --max-steps, or start a new run")


def check_processes(run_dir: Path, meta: dict[str, Any], record: dict[str, Any], world_size: int, batch: int,
                    notes: list[str], changes: list[dict[str, Any]]) -> None:
    """A run resumed on another number of processes keeps its global batch, split the new number of ways
    (recorded in ``changes``), or is refused when that number does not divide it."""
    before = int(meta.get("processes", record.get("environment", {}).get("processes", 1)))
    if before != world_size:
        notes.append(check_world_change(run_dir, before, world_size, batch))
        changes.append({"key": "processes", "old": before, "new": world_size})


def schedule_steps(cfg: TrainConfig, meta: dict[str, Any], total: int, restretch: bool, notes: list[str],
                   changes: list[dict[str, Any]]) -> int:
    """The lr schedule's length: the one it started with, so a longer run continues at its final lr (``total``,
    recorded in ``changes``, when ``restretch``)."""
    fixed = int(meta.get("scheduler", {}).get("total_steps", total))
    if fixed == total:
        return total
    if restretch:
        changes.append({"key": "schedule_steps", "old": fixed, "new": total})
        return total
    if not length_dependent(cfg):
        return fixed  # exponential, constant, step at integer milestones: the lr at a step ignores the length
    if total > fixed:
        notes.append(f"the {cfg.schedule} schedule keeps the {fixed} steps it started with: steps "
                     f"{fixed + 1}..{total} run at its final lr {lr_at(cfg, fixed, fixed):.3g} "
                     f"(--restretch-schedule stretches it over all {total} steps instead)")
    else:
        notes.append(f"the {cfg.schedule} schedule keeps the {fixed} steps it started with: the run now "
                     f"stops at step {total}, before it ends (--restretch-schedule fits it to {total} "
                     f"steps instead)")
    return fixed
