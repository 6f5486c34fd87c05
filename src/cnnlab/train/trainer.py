"""Trainer: one run of TrainConfig in a run directory, resumable, on one process or many (torchrun + DDP).

Run directory:
    config.json         resolved config + environment (torch version, device, precision, processes)
    metrics.jsonl       one line per logged step ({"kind": "step"}) and per epoch ({"kind": "epoch"})
    checkpoints/        last.safetensors, best.safetensors (weights, optimiser, RNG states + JSON header)
    summary.json        final numbers, written when the run ends
    train.lock          while a process trains in it (see rundir.RunLock)

The guarantees (atomic writes, exact resume, one process per run, nothing non-finite saved, a finished run
never modified) and their tests are listed in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import signal
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab import __version__
from cnnlab.data import ArrayDataset, Augment, BatchLoader, channel_stats, check_labels, load_dataset
from cnnlab.models import aux_loss, check_trusted
from cnnlab.train.checkpoint import (
    atomic_write,
    first_non_finite,
    fork_rng,
    load_checkpoint,
    read_meta,
    restore,
    rng_state,
    save_checkpoint,
    seed_rng,
    set_rng_state,
)
from cnnlab.train.config import TrainConfig, from_dict
from cnnlab.train.distributed import (  # noqa: F401 (weights_digest: still importable from here)
    Distributed,
    check_world_change,
    torchrun_env,
    weights_digest,
)
from cnnlab.train.evaluate import evaluate
from cnnlab.train.optim import (
    OPTIMIZATION_KEYS,
    build_optimizer,
    describe_schedule,
    length_dependent,
    lr_at,
    milestone_warning,
    set_hyperparameters,
    set_lr,
)
from cnnlab.train.progress import Progress, RunLogs, model_cost, precision_note, start_line
from cnnlab.train.rundir import (
    RunLock,
    RunLockedError,
    add_changes,
    read_record,
    remove_temp_files,
    run_config,
    source_commit,
)
from cnnlab.train.techniques import build_ema, prepare_model, set_group_hyperparameters, split_param_groups

log = logging.getLogger(__name__)

# data_dir only says where the official files are (--data says which): e.g. each machine's own copy
RESUMABLE_CHANGES = ("epochs", "max_steps", "log_every", "checkpoint_every", "eval_every", "compile",
                     "tensorboard", "data_dir")


class NonFiniteLossError(ValueError):
    """The loss, the weights or the optimiser state became NaN or infinite; nothing non-finite was saved, and
    the message names the checkpoints that hold the last finite state."""


class RunFinishedError(ValueError):
    """``resume`` of a run that has finished: it is left as it is (a larger epochs / max_steps extends it)."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


# ---------------------------------------------------------------- helpers
def resolve_device(name: str) -> torch.device:
    """``auto``: the local CUDA device under torchrun or cuda:0 when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torchrun_env()[2])
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for but CUDA is not available; use --set device=cpu")
    return device


def native_cpu_bf16() -> bool:
    """True when the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere oneDNN emulates it."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype. ``auto``: bfloat16 on GPUs that have it and on CPUs with native bfloat16; fp32 on
    CPUs without it, where emulated bfloat16 convolutions measured 2x slower than fp32 (BENCHMARKS.md)."""
    if name == "fp32":
        return None
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = device.type == "cpu" and (name == "bf16" or native_cpu_bf16())
    if name == "bf16" and not supported:
        raise ValueError(f"bfloat16 is not supported on {device}; use --set precision=fp32")
    return torch.bfloat16 if supported else None


def build_model(cfg: TrainConfig, num_classes: int, *, name: str | None = None) -> nn.Module:
    """A zoo model by registry name, or ``package.module:callable`` called with ``num_classes`` and the options
    (``name`` builds another network than ``cfg.model`` with the same options). Whatever your callable raises
    becomes one ValueError naming it (``--debug`` shows the traceback)."""
    from cnnlab.models import create_model, import_object

    target = name or cfg.model
    if ":" not in target:
        return create_model(target, num_classes=num_classes, **cfg.model_options)
    import_object(target)  # a module or attribute that cannot be had: its own one-line error
    try:
        return create_model(target, num_classes=num_classes, **cfg.model_options)
    except Exception as exc:
        options = "".join(f", {k}={v!r}" for k, v in cfg.model_options.items())
        raise ValueError(f"{target}(num_classes={num_classes}{options}) failed: {type(exc).__name__}: "
                         f"{_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_not_empty(ds: ArrayDataset, split: str) -> None:
    if len(ds) == 0:
        field = "--train-file / --data-dir" if split == "training" else "--test-file / --data-dir"
        raise ValueError(f"the {split} set{f' {ds.source}' if ds.source else ''} is empty (0 images); check {field}")


def _names(classes: tuple[str, ...]) -> str:
    return ", ".join(classes[:6]) + (f", ... ({len(classes)} in all)" if len(classes) > 6 else "")


def _run_classes(train: ArrayDataset, test: ArrayDataset, wanted: int | None,
                 notes: list[str]) -> tuple[int, tuple[str, ...]]:
    """The class count and names of a run: ``num_classes`` when set, else what the data's metadata names, else
    the labels' range (said in ``notes``). Every label of both splits must fall in it."""
    named = next((ds for ds in (train, test) if not ds.inferred_classes), None)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise ValueError(f"training images are {train.x.shape[1:]} but test images {test.x.shape[1:]}; "
                         f"both splits must share one size")
    if not (train.inferred_classes or test.inferred_classes) and train.classes != test.classes:
        raise ValueError(f"the training set names classes ({_names(train.classes)}) but the test set "
                         f"{test.source} names ({_names(test.classes)}); both splits must share one class list")
    if wanted is not None:
        n, why = wanted, f"num_classes={wanted}"
    elif named is not None:
        n, why = named.num_classes, f"{named.source or 'the data set'} names {named.num_classes} classes"
    else:
        n = max(int(train.y.max()), int(test.y.max())) + 1
        why = "the count inferred from the labels"
        notes.append(f"no class names in the data: {n} classes, inferred from the labels 0..{n - 1} (set "
                     f"num_classes to change it)")
    for ds, split in ((train, "training"), (test, "test")):
        check_labels(ds.y, n, ds.source or f"the {split} set", why)
    names = named.classes if named is not None and named.num_classes == n else tuple(str(i) for i in range(n))
    return n, names


def _summary_finished(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / "summary.json").read_text()).get("finished"))
    except (OSError, ValueError, AttributeError):
        return False


def _environment(device: torch.device, precision: torch.dtype | None, world: int) -> dict[str, Any]:
    return {"cnnlab": __version__, "git_commit": source_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device),
            "autocast": str(precision).replace("torch.", "") if precision else "fp32", "processes": world,
            "threads": torch.get_num_threads(), "host": platform.node()}


# ---------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``config`` into run directory ``out``; ``resume=True`` continues the run already in ``out``.

    ``progress``: print a start line and a line per epoch (rank 0), and a bar when ``bar`` (default: when stderr
    is a terminal). ``model``, ``train_data`` and ``test_data`` may be given directly (any nn.Module, any ArrayDataset);
    otherwise they come from ``config.model`` and ``config.data``. Resuming a run whose stored config names
    ``package.module:callable`` needs ``model=`` or ``trust_code=True``: a run directory never imports code on
    its own word (``cnnlab.models.check_trusted``).

    A resume may change ``RESUMABLE_CHANGES`` freely, and the optimisation settings of ``OPTIMIZATION_KEYS``
    (lr, weight_decay, ...) only when named in ``allow_changes``; each change is recorded with its step in
    config.json. The lr schedule keeps the length it started with unless ``restretch_schedule``. Rank 0 holds
    the run directory's lock from here until ``fit`` returns.
    """

    def __init__(self, config: TrainConfig, out: str | Path, *, resume: bool = False, model: nn.Module | None = None,
                 train_data: ArrayDataset | None = None, test_data: ArrayDataset | None = None,
                 progress: bool = True, bar: bool | None = None, trust_code: bool = False,
                 allow_changes: Collection[str] = (), restretch_schedule: bool = False) -> None:
        self.run_dir = Path(out)
        self.trust_code, self.bar = trust_code, bar
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._lock = RunLock(self.run_dir)
        self.device = resolve_device(config.device)
        self.dist = Distributed(self.device)
        self.is_main = self.dist.is_main
        made = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]  # e.g. runs/ and runs/x
        try:
            with fork_rng():  # the caller's torch RNG stays as it was; the run keeps its own in self._rng
                self._setup(config, resume, model, train_data, test_data, progress, tuple(allow_changes),
                            restretch_schedule)
        except BaseException:
            self._lock.release()
            self.dist.close()
            if made and self.is_main:
                self._remove_empty_folders(made)
            raise

    def _remove_empty_folders(self, made: list[Path]) -> None:
        """A run that failed during set-up leaves nothing behind (only folders it made itself, still empty)."""
        for folder in (self.ckpt_dir, *made):
            try:
                folder.rmdir()  # rmdir refuses non-empty folders, so no data can be lost here
            except OSError:
                if folder != self.ckpt_dir:
                    break

    # -------------------------------------------------------- set-up
    def _setup(self, config: TrainConfig, resume: bool, model: nn.Module | None, train_data: ArrayDataset | None,
               test_data: ArrayDataset | None, progress: bool, allow_changes: tuple[str, ...],
               restretch: bool) -> None:
        checkpoint = None
        self._given_model = model
        self._changes: list[dict[str, Any]] = []
        self._notes: list[str] = []  # said (rank 0, log.info) once set-up has succeeded
        unknown = sorted(set(allow_changes) - set(OPTIMIZATION_KEYS))
        if unknown:
            raise ValueError(f"--allow-change {','.join(unknown)}: not an optimisation setting; it takes "
                             f"{', '.join(OPTIMIZATION_KEYS)} ({', '.join(RESUMABLE_CHANGES)} change without it)")
        if resume and not (self.run_dir / "config.json").is_file():
            if not self.run_dir.is_dir():
                raise FileNotFoundError(f"{self.run_dir} holds no run (no such folder); check the --resume path")
            resume = False
            self._notes.append(f"{self.run_dir} has no config.json: its run stopped before set-up finished; "
                               f"starting it afresh")
        elif not resume and self.ckpt_dir.is_dir() and not (self.run_dir / "config.json").exists():
            self._notes.append(f"{self.run_dir} has no config.json: its run stopped before set-up finished; "
                               f"starting it afresh")
        self._open_run_dir(fresh=not resume)
        if resume:
            config, checkpoint = self._resume_config(config, allow_changes)
        self.config = cfg = config
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.sync_bn and self.device.type != "cuda":
            raise ValueError(f"sync_bn needs CUDA devices: PyTorch's SyncBatchNorm does not run on "
                             f"{self.device} (torch {torch.__version__}); drop sync_bn=true or train on GPUs")
        self.progress = progress and self.is_main

        if not self.is_main:
            self.dist.barrier()  # rank 0 downloads (if needed) first; torchrun ends all ranks if it fails
        train = train_data if train_data is not None else self._load("train")
        test = test_data if test_data is not None else self._load("test")
        if self.is_main:
            self.dist.barrier()
        _check_not_empty(train, "training")
        _check_not_empty(test, "test")
        if cfg.subset is not None:
            train = train.subset(cfg.subset)
        self.num_classes, self.classes = _run_classes(train, test, cfg.num_classes, self._notes)
        self.classes_named = not (train.inferred_classes and test.inferred_classes)
        self.image_shape = tuple(int(d) for d in train.x.shape[1:])  # H, W, C
        if checkpoint is not None and int(checkpoint[1].get("num_classes", self.num_classes)) != self.num_classes:
            raise ValueError(f"{self.run_dir} was trained with {checkpoint[1]['num_classes']} classes but the data "
                             f"now has {self.num_classes}; resume it on the data it started with")
        self.mean, self.std = channel_stats(train.x) if checkpoint is None else (
            tuple(checkpoint[1]["mean"]), tuple(checkpoint[1]["std"]))
        if checkpoint is not None:
            self._check_processes(checkpoint[1], min(cfg.batch_size, len(train)))
        data_device = self.device if self.device.type == "cuda" else "cpu"
        common = dict(rank=self.dist.rank, world_size=self.dist.world_size, device=data_device,
                      channels_last=cfg.channels_last)
        augment = Augment(cfg.crop_padding, cfg.hflip, cfg.crop_reflect, cfg.alternate_flips) \
            if (cfg.crop_padding or cfg.hflip) else None
        self.train_loader = BatchLoader(train, cfg.batch_size, self.mean, self.std, train=True, augment=augment,
                                        seed=cfg.seed, **common)
        self.test_loader = BatchLoader(test, cfg.eval_batch_size, self.mean, self.std, train=False, **common)
        if len(self.train_loader) == 0:
            raise ValueError(f"the training set ({len(train)} images) is smaller than one batch of {cfg.batch_size}")
        self.steps_per_epoch = len(self.train_loader)
        self.total_steps = cfg.epochs * self.steps_per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.schedule_steps = self.total_steps  # the lr schedule's length, fixed when the run starts
        if checkpoint is not None:
            self._check_not_finished(int(checkpoint[1]["step"]))
            self._fix_schedule(checkpoint[1], restretch)

        seed_rng(cfg.seed)  # weight init (in the run's fork); the state is saved with every checkpoint
        self.model = model if model is not None else build_model(cfg, self.num_classes)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.dist.active:
            # statistics of the global batch; the same parameters and buffers, so checkpoints load either way
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self._check_input(train)
        prepare_model(self.model, cfg, self.train_loader, fresh=checkpoint is None)  # dirac_init, whiten_init
        self.optimizer = build_optimizer(self.model, cfg)
        split_param_groups(self.optimizer, self.model, cfg)  # norm_lr_scale, norm_weight_decay, whiten_bias
        self.generator = torch.Generator().manual_seed(cfg.seed)  # augmentation draws
        self.step, self.best_acc = 0, -1.0
        self.epoch_stats: list[float] = [0.0, 0, 0]  # this epoch so far: loss sum, correct, images
        # which checkpoints on disk hold a finite state, named when training stops on NaN / infinity
        self._saved = {name: int(meta["step"]) for name in ("last", "best")
                       if "step" in (meta := read_meta(self.ckpt_dir / f"{name}.safetensors"))}
        if checkpoint is not None:
            tensors, meta = checkpoint
            restore(tensors, meta, self.model, self.optimizer)
            set_hyperparameters(self.optimizer, cfg)  # the saved groups hold the old settings; cfg's win
            set_rng_state(tensors)
            self.generator.set_state(tensors["rng/run"])
            self.step, self.best_acc = int(meta["step"]), float(meta.get("best_acc", -1.0))
            self.epoch_stats = list(meta["epoch_stats"])
        self._rng = rng_state()  # what training (dropout, ...) draws from, restored by each fit()
        self.ema = build_ema(self.model, cfg, checkpoint[0] if checkpoint is not None else None)  # ema_decay
        if resume and self.is_main:
            changes = [{"step": self.step, **c} for c in self._changes]
            if changes:
                add_changes(self.run_dir, self._record, changes)
            said = "; ".join(f"{c['key']} {c['old']} -> {c['new']}" for c in changes)
            self._notes.append(f"resuming {self.run_dir} at step {self.step}"
                               f"{f' with {said} (recorded in config.json)' if said else ''}")
        self.metrics = RunLogs(self.run_dir, self.is_main, tensorboard=cfg.tensorboard)  # jsonl, csv, tensorboard
        self.metrics.truncate_after(self.step)
        if self.is_main and not resume:
            env = _environment(self.device, self.precision, self.dist.world_size)
            atomic_write(self.run_dir / "config.json", json.dumps({"config": cfg.to_dict(), "environment": env,
                                                                   "changes": []}, indent=2))
        self.forward_model: nn.Module = self.dist.wrap(self.model, self.device)
        if cfg.compile:  # after DDP, so that the compiler sees DDP's gradient buckets (PyTorch's advice)
            self.forward_model = torch.compile(self.forward_model)
        if self.is_main:
            for note in self._notes:
                log.info("%s", note)
            late = milestone_warning(cfg, self.schedule_steps)
            if late is not None:
                log.warning("%s", late)

    def _load(self, split: str) -> ArrayDataset:
        cfg_file = self.config.train_file if split == "train" else self.config.test_file
        return load_dataset(self.config.data, split, self.config.data_dir, file=cfg_file,
                            download=self.config.download, image_size=self.config.image_size)

    def _open_run_dir(self, fresh: bool) -> None:
        """Rank 0 makes the run directory (``fresh``) and takes its lock, then removes what interrupted writes
        left behind; a fresh run never writes over another run's files."""
        if self.is_main:
            try:
                self.ckpt_dir.mkdir(parents=True, exist_ok=True)
                taken = self._lock.acquire()
                probe = self.run_dir / ".write-test"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                if isinstance(exc, RunLockedError):
                    raise
                raise PermissionError(f"cannot write to run directory {self.run_dir} ({exc.strerror}); "
                                      f"choose a writable --out") from None
            if taken:
                log.warning("%s", taken)
            if fresh:
                if (self.run_dir / "config.json").exists():
                    raise FileExistsError(f"{self.run_dir} already holds a run; continue it with --resume "
                                          f"{self.run_dir} or choose another --out")
                found = [str(p.relative_to(self.run_dir)) for p in (
                    self.ckpt_dir / "last.safetensors", self.ckpt_dir / "best.safetensors",
                    self.run_dir / "metrics.jsonl", self.run_dir / "summary.json") if p.exists()]
                if found:
                    raise FileExistsError(f"{self.run_dir} holds {', '.join(found)} but no config.json, so it "
                                          f"cannot be continued; choose another --out (nothing was changed)")
            files, size = remove_temp_files(self.run_dir)
            if files:
                log.info("removed %d temporary file(s) (%.1f MB) left by interrupted writes in %s", files,
                         size / 1e6, self.run_dir)
        self.dist.barrier()

    def _resume_config(self, config: TrainConfig,
                       allow_changes: tuple[str, ...]) -> tuple[TrainConfig, tuple[dict, dict] | None]:
        self._record = read_record(self.run_dir)
        stored = from_dict(run_config(self.run_dir, self._record))
        if self._given_model is None:
            check_trusted(stored.model, str(self.run_dir / "config.json"), trusted=self.trust_code)
        now, before = config.to_dict(), stored.to_dict()
        changed = {k: v for k, v in now.items() if v != before[k]}
        if now["schedule"] != "step" and before["schedule"] != "step":
            changed.pop("milestones", None)  # unused without a step schedule (and their default has changed)
        unasked = sorted(k for k in changed if k in OPTIMIZATION_KEYS and k not in allow_changes)
        if unasked:
            raise ValueError(f"cannot change {', '.join(unasked)} when resuming {self.run_dir} unasked: pass "
                             f"--allow-change {','.join(unasked)} (Python: allow_changes=) to change it from this "
                             f"step on, recorded in config.json")
        fixed = sorted(set(changed) - set(RESUMABLE_CHANGES) - set(OPTIMIZATION_KEYS))
        if fixed:
            raise ValueError(f"cannot change {', '.join(fixed)} when resuming {self.run_dir} (only "
                             f"{', '.join(RESUMABLE_CHANGES)} may change, optimisation settings with "
                             f"--allow-change); start a new run instead")
        self._changes = [{"key": k, "old": before[k], "new": v} for k, v in changed.items()]
        return stored.replace(**changed), self._resume_checkpoint()

    def _resume_checkpoint(self) -> tuple[dict, dict] | None:
        """last.safetensors, or best.safetensors (with a message) when last is missing, unreadable or not finite;
        None when the run stopped before its first checkpoint."""
        problems: list[str] = []
        for name in ("last", "best"):
            path = self.ckpt_dir / f"{name}.safetensors"
            if not path.exists():
                problems.append(f"{path} is missing")
                continue
            try:
                tensors, meta = load_checkpoint(path)
            except ValueError as exc:
                problems.append(_first_line(exc))
                continue
            bad = first_non_finite({k: v for k, v in tensors.items() if k.startswith(("model/", "optim/", "ema/"))})
            if bad is not None:
                problems.append(f"{path} holds NaN or infinity in {bad}")
                continue
            if name == "best":
                self._notes.append(f"{problems[0]}; resuming from the intact {path} (step {meta['step']}) instead")
            return tensors, meta
        if all(p.endswith("is missing") for p in problems):
            return None  # stopped before its first checkpoint: starts at step 0 with its stored config
        raise ValueError(f"{'; '.join(problems)}: no intact checkpoint to resume {self.run_dir} from; start "
                         f"afresh with another --out")

    def _check_not_finished(self, step: int) -> None:
        if step >= self.total_steps and _summary_finished(self.run_dir):
            cfg = self.config
            raise RunFinishedError(f"{self.run_dir} is finished ({step} of {self.total_steps} steps) and is left "
                                   f"as it is; extend it with a larger --epochs (now {cfg.epochs}, "
                                   f"{self.steps_per_epoch} steps each) or --max-steps, or start a new run")

    def _check_processes(self, meta: dict[str, Any], batch: int) -> None:
        """A run resumed on another number of processes keeps its global batch, split the new number of ways
        (recorded in config.json), or is refused when that number does not divide it."""
        before = int(meta.get("processes", self._record.get("environment", {}).get("processes", 1)))
        if before != self.dist.world_size:
            self._notes.append(check_world_change(self.run_dir, before, self.dist.world_size, batch))
            self._changes.append({"key": "processes", "old": before, "new": self.dist.world_size})

    def _fix_schedule(self, meta: dict[str, Any], restretch: bool) -> None:
        """The schedule keeps the length it started with: a longer run continues at its final lr."""
        cfg, total = self.config, self.total_steps
        fixed = int(meta.get("scheduler", {}).get("total_steps", total))
        if fixed == total:
            return
        if restretch:
            self._changes.append({"key": "schedule_steps", "old": fixed, "new": total})
            return
        self.schedule_steps = fixed
        if not length_dependent(cfg):
            return  # exponential, constant, step at integer milestones: the lr at a step ignores the run's length
        if total > fixed:
            self._notes.append(f"the {cfg.schedule} schedule keeps the {fixed} steps it started with: steps "
                               f"{fixed + 1}..{total} run at its final lr {lr_at(cfg, fixed, fixed):.3g} "
                               f"(--restretch-schedule stretches it over all {total} steps instead)")
        else:
            self._notes.append(f"the {cfg.schedule} schedule keeps the {fixed} steps it started with: the run now "
                               f"stops at step {total}, before it ends (--restretch-schedule fits it to {total} "
                               f"steps instead)")

    def _check_input(self, train: ArrayDataset) -> None:
        """Fail before training when the model cannot take these images (size or channels)."""
        h, w, c = train.x.shape[1:]
        probe = torch.zeros(2, c, h, w, device=self.device)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                self.model(probe)
        except Exception as exc:  # a user's network may raise anything; say which network and why, in one line
            hint = (f"; for {c}-channel images try --set \"model_options={{'in_channels': {c}}}\""
                    if c != 3 and "in_channels" not in self.config.model_options else "")
            kind = "" if isinstance(exc, (ValueError, RuntimeError)) else f"{type(exc).__name__}: "
            raise ValueError(f"{self.config.model} cannot take the {c}x{h}x{w} images of {self.config.data}: "
                             f"{kind}{_first_line(exc)}{hint}") from exc
        finally:
            self.model.train(was_training)

    # -------------------------------------------------------- checkpoints
    def _non_finite(self) -> str | None:
        """The first weight, buffer, EMA or optimiser tensor holding NaN or infinity (None: all finite)."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        tensors = {**self.model.state_dict(), **(self.ema.tensors() if self.ema is not None else {})}
        for param, state in self.optimizer.state.items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optimiser {key} of {names.get(id(param), '?')}"] = value
        return first_non_finite(tensors)

    def _stopped(self) -> str:
        """What a stop on NaN / infinity leaves, and how to go on."""
        kept = ", ".join(f"{name}.safetensors (step {step})" for name, step in sorted(self._saved.items()))
        where = f"the last finite state is in {self.ckpt_dir}: {kept}" if kept else "no checkpoint was saved yet"
        return (f"training stopped and nothing non-finite was saved; {where}; continue with a lower lr "
                f"(cnnlab train --resume {self.run_dir} --allow-change lr --lr LR) or set grad_clip")

    def _save(self, name: str, epoch: int) -> None:
        self.dist.broadcast_buffers(self.model)  # every rank holds what rank 0 saves
        if self.ema is not None:
            self.dist.broadcast_buffers(self.ema.module)
        bad = self._non_finite()
        if self.dist.any([float(bad is not None)], self.device)[0]:  # the ranks hold equal weights: all agree
            raise NonFiniteLossError(f"{bad or 'a tensor'} holds NaN or infinity after step {self.step}; "
                                     f"{self._stopped()}")
        if not self.is_main:
            return
        meta = {"step": self.step, "epoch": epoch, "best_acc": self.best_acc, "mean": list(self.mean),
                "std": list(self.std), "epoch_stats": self.epoch_stats, "classes": list(self.classes),
                "num_classes": self.num_classes, "classes_named": self.classes_named,
                "image_shape": list(self.image_shape), "processes": self.dist.world_size,
                "scheduler": {"name": self.config.schedule, "step": self.step, "total_steps": self.schedule_steps},
                "config": self.config.to_dict()}
        extra = {**rng_state(), "rng/run": self.generator.get_state(), **(self.ema.tensors() if self.ema else {})}
        save_checkpoint(self.ckpt_dir / f"{name}.safetensors", self.model, self.optimizer, extra, meta,
                        check_finite=False)  # just checked, on every rank
        self._saved[name] = self.step

    # -------------------------------------------------------- evaluation
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.precision)

    def evaluate(self) -> dict[str, Any]:
        """``cnnlab.train.evaluate`` of the test set (top-1 / top-5 / per-class accuracy, mean loss, confusion
        matrix); under DDP each rank evaluates its shard with rank 0's buffers, and the counts are summed."""
        self.dist.broadcast_buffers(self.model)
        net = self.model if self.ema is None else self.ema.module  # the weight average, when the run keeps one
        if net is not self.model:
            self.dist.broadcast_buffers(net)
        result = evaluate(net, self.test_loader, num_classes=self.num_classes, classes=self.classes,
                          device=self.device, precision=self.precision, tta=self.config.tta, reduce=self.dist.sum_)
        self.model.train()
        return result

    # -------------------------------------------------------- training
    @contextlib.contextmanager
    def _signals(self) -> Iterator[dict[str, int]]:
        """SIGINT/SIGTERM set a flag; the loop finishes its step, saves, and stops."""
        caught = {"signum": 0}
        if threading.current_thread() is not threading.main_thread():
            yield caught
            return

        def handler(signum, frame):
            caught["signum"] = signum

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield caught
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config

        def criterion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)

        with self._autocast():
            output = self.forward_model(x)
            logits = output[0] if isinstance(output, tuple) else output
            weights = 0.3 if cfg.aux_weights is None else cfg.aux_weights
            loss = aux_loss(output, y, weights, criterion)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        return loss.detach(), (logits.detach().argmax(1) == y).sum()

    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train to the end (or to ``until_step``, saving a checkpoint there); returns the summary."""
        finished = False
        try:
            if self.is_main and not self._lock.held:  # a second fit() of one Trainer locks again
                taken = self._lock.acquire()
                if taken:
                    log.warning("%s", taken)
            with fork_rng():
                set_rng_state(self._rng)
                try:
                    summary = self._fit(until_step)
                finally:
                    self._rng = rng_state()
            finished = True
            return summary
        finally:
            self.metrics.close()
            self._lock.release()
            if finished:
                # every rank leaves together: a rank that tears its gloo group down while rank 0 still writes
                # the summary was seen to abort at exit under load (not after an error: a dead peer would hang it)
                self.dist.barrier()
            self.dist.close()

    def _start_line(self) -> str:
        """What this run will do, in one line (progress.start_line)."""
        params, macs = model_cost(self.model, self.image_shape)
        native = self.device.type == "cpu" and native_cpu_bf16()
        precision = precision_note(self.config.precision, self.precision, self.device, native)
        return start_line(self.run_dir, self.config.model, params, macs, self.device, precision, self.step,
                          self.total_steps, self.steps_per_epoch, describe_schedule(self.config, self.schedule_steps))

    def _fit(self, until_step: int | None) -> dict[str, Any]:
        cfg, spe = self.config, self.steps_per_epoch
        stop_at = self.total_steps if until_step is None else min(until_step, self.total_steps)
        bar = Progress(self.total_steps, self.step, enabled=self.progress, bar=self.bar)
        if self.progress:
            bar.line(self._start_line())
        self.model.train()
        order_epoch, order = -1, None
        last_eval: dict[str, Any] = {}
        window_images, window_start = 0, time.perf_counter()
        epoch_images, epoch_start = 0, window_start  # for the epoch line's images/s (training steps only)
        with self._signals() as caught:
            while self.step < stop_at:
                epoch, index = divmod(self.step, spe)
                if epoch != order_epoch:
                    order_epoch, order = epoch, self.train_loader.epoch_order(epoch)
                x, y = self.train_loader.batch(order, index, self.generator, epoch=epoch)
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                lr = lr_at(cfg, self.step, self.schedule_steps)
                set_lr(self.optimizer, lr)
                set_group_hyperparameters(self.optimizer, cfg, lr, epoch)
                loss, correct = self._train_step(x, y)
                loss_value = loss.item()
                bad, stop = self.dist.any([float(not math.isfinite(loss_value)), float(caught["signum"])],
                                          self.device)
                if bad:
                    raise NonFiniteLossError(f"loss became {loss_value} at step {self.step + 1}; {self._stopped()}")
                self.optimizer.step()
                self.step += 1
                if self.ema is not None:
                    self.ema.update(self.model, self.step, self.schedule_steps)  # the ramp keeps the run's length
                n = len(y) * self.dist.world_size
                correct_value = int(correct)
                window_images += n
                epoch_images += n
                self.epoch_stats = [self.epoch_stats[0] + loss_value * len(y),
                                    self.epoch_stats[1] + correct_value, self.epoch_stats[2] + len(y)]
                if self.step % cfg.log_every == 0:
                    now = time.perf_counter()
                    ips = window_images / max(now - window_start, 1e-9)
                    window_images, window_start = 0, now
                    self.metrics.write({"kind": "step", "step": self.step, "epoch": epoch, "loss": loss_value,
                                        "acc": correct_value / len(y), "lr": lr, "images_per_s": ips})
                    bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{correct_value / len(y):.3f}",
                                    img_s=f"{ips:.0f}", refresh=False)
                bar.update(1)
                epoch_end = self.step % spe == 0 or self.step == self.total_steps
                if epoch_end:
                    record = {"kind": "epoch", "step": self.step, "epoch": epoch + 1,
                              "train_loss": self.epoch_stats[0] / max(1, self.epoch_stats[2]),
                              "train_acc": self.epoch_stats[1] / max(1, self.epoch_stats[2]), "lr": lr,
                              "images_per_s": epoch_images / max(time.perf_counter() - epoch_start, 1e-9)}
                    self.epoch_stats = [0.0, 0, 0]
                    if (epoch + 1) % cfg.eval_every == 0 or self.step == self.total_steps:
                        last_eval = self.evaluate()
                        record.update(test_loss=last_eval["loss"], test_acc=last_eval["accuracy"])
                        if last_eval["accuracy"] > self.best_acc:
                            self.best_acc = last_eval["accuracy"]
                            self._save("best", epoch + 1)
                    self.metrics.write(record)
                    bar.epoch(record, math.ceil(self.total_steps / spe), self.step, stop_at)
                    epoch_images, epoch_start = 0, time.perf_counter()
                if epoch_end or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) \
                        or self.step == stop_at or stop:
                    self._save("last", self.step // spe)
                if stop:
                    bar.close()
                    name = signal.Signals(int(stop)).name
                    raise TrainingInterrupted(f"{name} at step {self.step}: checkpoint saved; continue with "
                                              f"--resume {self.run_dir}", int(stop))
        bar.close()
        if not last_eval and self.step >= self.total_steps:
            # stopped after its last checkpoint but before its summary: finish it, training nothing
            last_eval = self.evaluate()
        in_sync = self.dist.ranks_identical(self.model)
        summary = {"step": self.step, "total_steps": self.total_steps, "finished": self.step >= self.total_steps,
                   "best_test_acc": self.best_acc if self.best_acc >= 0 else None,
                   "final_test_acc": last_eval.get("accuracy"), "final_test_loss": last_eval.get("loss"),
                   "test_images": last_eval.get("images"),
                   "run_dir": str(self.run_dir), "processes": self.dist.world_size}
        if in_sync is not None:
            summary["ranks_identical"] = in_sync
        if self.is_main:
            atomic_write(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary
