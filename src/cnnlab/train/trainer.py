"""Trainer: one run of TrainConfig in a run directory, resumable, on one process or many (torchrun + DDP).

Run directory:
    config.json         resolved config + environment (torch version, device, precision, processes)
    metrics.jsonl       one line per logged step ({"kind": "step"}) and per epoch ({"kind": "epoch"})
    checkpoints/        last.safetensors, best.safetensors (weights, optimiser, RNG states + JSON header)
    summary.json        final numbers, written when the run ends
    train.lock          while a process trains in it (see rundir.RunLock)

The guarantees (atomic writes, exact resume, one process per run, nothing non-finite saved, a finished run
never modified) and their tests are listed in docs/reliability.md. What a run is made of (device, precision,
network, data checks) is in components.py, opening and resuming a run directory in rundir.py, one step and what
guards it in step.py.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import ArrayDataset, Augment, BatchLoader, channel_stats, load_dataset
from cnnlab.train import rundir
from cnnlab.train.checkpoint import (
    atomic_write,
    fork_rng,
    read_meta,
    restore,
    rng_state,
    save_checkpoint,
    seed_rng,
    set_rng_state,
)
from cnnlab.train.components import (  # noqa: F401 (build_model, resolve_device, ...: importable here)
    autocast,
    build_model,
    check_input,
    check_not_empty,
    native_cpu_bf16,
    resolve_device,
    resolve_precision,
    run_classes,
)
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import Distributed, weights_digest  # noqa: F401 (weights_digest: importable here)
from cnnlab.train.evaluate import evaluate
from cnnlab.train.optim import (
    build_optimizer,
    describe_schedule,
    lr_at,
    milestone_warning,
    set_hyperparameters,
)
from cnnlab.train.progress import Progress, RunLogs, model_cost, precision_note, start_line
from cnnlab.train.rundir import RESUMABLE_CHANGES, RunFinishedError, RunLock  # noqa: F401 (importable here)
from cnnlab.train.step import (
    NonFiniteLossError,
    TrainingInterrupted,
    catch_signals,
    non_finite,
    stopped,
    train_step,
)
from cnnlab.train.techniques import build_ema, prepare_model, set_group_hyperparameters, split_param_groups

log = logging.getLogger(__name__)


class Trainer:
    """Trains ``config`` into run directory ``out``; ``resume=True`` continues the run already in ``out``.

    ``progress``: print a start line and a line per epoch (rank 0), and a bar when ``bar`` (default: when stderr
    is a terminal). ``model``, ``train_data`` and ``test_data`` may be given directly (any nn.Module, any
    ArrayDataset); otherwise they come from ``config.model`` and ``config.data``. Resuming a run whose stored
    config names ``package.module:callable`` needs ``model=`` or ``trust_code=True``: a run directory never
    imports code on its own word (``cnnlab.models.check_trusted``).

    A resume may change ``RESUMABLE_CHANGES`` freely, and the optimisation settings of ``OPTIMIZATION_KEYS``
    (lr, weight_decay, ...) only when named in ``allow_changes``; each change is recorded with its step in
    config.json. The lr schedule keeps the length it started with unless ``restretch_schedule``. Rank 0 holds
    the run directory's lock from here until ``fit`` returns. The torch RNG the run draws from (init, dropout)
    is its own, seeded by ``config.seed``: a caller's global RNG is left as it was. Under torchrun the processes
    train the run together (DDP); ``distributed=False`` trains it on this process alone (an experiment's ranks
    each train whole runs).
    """

    def __init__(self, config: TrainConfig, out: str | Path, *, resume: bool = False, model: nn.Module | None = None,
                 train_data: ArrayDataset | None = None, test_data: ArrayDataset | None = None,
                 progress: bool = True, bar: bool | None = None, trust_code: bool = False,
                 allow_changes: Collection[str] = (), restretch_schedule: bool = False,
                 distributed: bool = True) -> None:
        self.run_dir = Path(out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self._lock = RunLock(self.run_dir)
        self.device = resolve_device(config.device)
        self.dist = Distributed(self.device, join=distributed)
        self.is_main = self.dist.is_main
        self.progress, self.bar = progress and self.is_main, bar
        made = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]  # e.g. runs/ and runs/x
        try:
            with fork_rng():  # the caller's torch RNG stays as it was; the run keeps its own in self._rng
                self._setup(config, resume, model, train_data, test_data, trust_code or model is not None,
                            tuple(allow_changes), restretch_schedule)
        except BaseException:
            self._lock.release()
            self.dist.close()
            if made and self.is_main:
                for folder in (self.ckpt_dir, *made):  # a failed set-up leaves no folder it made, if still empty
                    try:
                        folder.rmdir()  # rmdir refuses non-empty folders, so no data can be lost here
                    except OSError:
                        if folder != self.ckpt_dir:
                            break
            raise

    # -------------------------------------------------------- set-up
    def _setup(self, config: TrainConfig, resume: bool, model: nn.Module | None, train_data: ArrayDataset | None,
               test_data: ArrayDataset | None, trusted: bool, allow_changes: tuple[str, ...],
               restretch: bool) -> None:
        self._notes: list[str] = []  # said (rank 0, log.info) once set-up has succeeded
        changes: list[dict[str, Any]] = []
        rundir.check_allowed_changes(allow_changes)
        resume = rundir.resumable(self.run_dir, resume, self._notes)
        if self.is_main:
            rundir.open_run_dir(self.run_dir, self._lock, fresh=not resume)
        self.dist.barrier()
        checkpoint, record = None, {}
        if resume:
            config, record, changes = rundir.resume_config(self.run_dir, config, allow_changes, trusted=trusted)
            checkpoint = rundir.resume_checkpoint(self.run_dir, self._notes)
        meta = checkpoint[1] if checkpoint is not None else None
        self.config = cfg = config
        self.precision = resolve_precision(cfg.precision, self.device)
        if cfg.sync_bn and self.device.type != "cuda":
            raise ValueError(f"sync_bn needs CUDA devices: PyTorch's SyncBatchNorm does not run on "
                             f"{self.device} (torch {torch.__version__}); drop sync_bn=true or train on GPUs")

        train, test = self._data(train_data, test_data)
        if meta is not None and int(meta.get("num_classes", self.num_classes)) != self.num_classes:
            raise ValueError(f"{self.run_dir} was trained with {meta['num_classes']} classes but the data "
                             f"now has {self.num_classes}; resume it on the data it started with")
        self.mean, self.std = channel_stats(train.x) if meta is None else (tuple(meta["mean"]), tuple(meta["std"]))
        if meta is not None:
            rundir.check_processes(self.run_dir, meta, record, self.dist.world_size, min(cfg.batch_size, len(train)),
                            self._notes, changes)
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
        if meta is not None:
            rundir.check_not_finished(self.run_dir, cfg, int(meta["step"]), self.total_steps, self.steps_per_epoch)
            self.schedule_steps = rundir.schedule_steps(cfg, meta, self.total_steps, restretch, self._notes, changes)

        self._build(model, checkpoint)
        if resume and self.is_main:
            changes = [{"step": self.step, **c} for c in changes]
            if changes:
                rundir.add_changes(self.run_dir, record, changes)
            said = "; ".join(f"{c['key']} {c['old']} -> {c['new']}" for c in changes)
            self._notes.append(f"resuming {self.run_dir} at step {self.step}"
                               f"{f' with {said} (recorded in config.json)' if said else ''}")
        self.metrics = RunLogs(self.run_dir, self.is_main, tensorboard=cfg.tensorboard)  # jsonl, csv, tensorboard
        self.metrics.truncate_after(self.step)
        if self.is_main and not resume:
            env = rundir.environment(self.device, self.precision, self.dist.world_size)
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

    def _data(self, train: ArrayDataset | None, test: ArrayDataset | None) -> tuple[ArrayDataset, ArrayDataset]:
        """The training and test sets (given, or loaded by rank 0 first), checked; sets the run's classes."""
        cfg = self.config
        if not self.is_main:
            self.dist.barrier()  # rank 0 downloads (if needed) first; torchrun ends all ranks if it fails
        if train is None:
            train = load_dataset(cfg.data, "train", cfg.data_dir, file=cfg.train_file, download=cfg.download,
                                 image_size=cfg.image_size)
        if test is None:
            test = load_dataset(cfg.data, "test", cfg.data_dir, file=cfg.test_file, download=cfg.download,
                                image_size=cfg.image_size)
        if self.is_main:
            self.dist.barrier()
        check_not_empty(train, "training")
        check_not_empty(test, "test")
        if cfg.subset is not None:
            train = train.subset(cfg.subset)
        self.num_classes, self.classes = run_classes(train, test, cfg.num_classes, self._notes)
        self.classes_named = not (train.inferred_classes and test.inferred_classes)
        self.image_shape = tuple(int(d) for d in train.x.shape[1:])  # H, W, C
        return train, test

    def _build(self, model: nn.Module | None, checkpoint: tuple[dict, dict] | None) -> None:
        """The network (seeded init), optimiser, augmentation generator and EMA, restored from ``checkpoint``."""
        cfg = self.config
        seed_rng(cfg.seed)  # weight init (in the run's fork); the state is saved with every checkpoint
        self.model = model if model is not None else build_model(cfg, self.num_classes)
        self.model.to(self.device)
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.sync_bn and self.dist.active:
            # statistics of the global batch; the same parameters and buffers, so checkpoints load either way
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        check_input(self.model, cfg, self.image_shape, self.device)
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

    # -------------------------------------------------------- checkpoints
    def _save(self, name: str, epoch: int) -> None:
        self._sync_buffers()  # every rank holds what rank 0 saves
        bad = non_finite(self.model, self.ema, self.optimizer)
        if self.dist.any([float(bad is not None)], self.device)[0]:  # the ranks hold equal weights: all agree
            raise NonFiniteLossError(f"{bad or 'a tensor'} holds NaN or infinity after step {self.step}; "
                                     f"{stopped(self.run_dir, self._saved)}")
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
    def evaluate(self) -> dict[str, Any]:
        """``cnnlab.train.evaluate`` of the test set (top-1 / top-5 / per-class accuracy, mean loss, confusion
        matrix); under DDP each rank evaluates its shard with rank 0's buffers, and the counts are summed."""
        self._sync_buffers()
        net = self.model if self.ema is None else self.ema.module  # the weight average, when the run keeps one
        result = evaluate(net, self.test_loader, num_classes=self.num_classes, classes=self.classes,
                          device=self.device, precision=self.precision, tta=self.config.tta, reduce=self.dist.sum_)
        self.model.train()
        return result

    def _sync_buffers(self) -> None:
        """Rank 0's buffers (BatchNorm statistics) on every rank, the EMA's too: what rank 0 saves or evaluates."""
        self.dist.broadcast_buffers(self.model)
        if self.ema is not None:
            self.dist.broadcast_buffers(self.ema.module)

    # -------------------------------------------------------- training
    def fit(self, until_step: int | None = None) -> dict[str, Any]:
        """Train to the end (or to ``until_step``, saving a checkpoint there); returns the summary."""
        finished = False
        try:
            if self.is_main and not self._lock.held:  # a second fit() of one Trainer locks again
                taken = self._lock.acquire()
                if taken:
                    log.warning("%s", taken)
            with fork_rng():  # the run's own RNG state, from set-up or the previous fit(); the caller's after
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
        with catch_signals() as caught:
            while self.step < stop_at:
                epoch, index = divmod(self.step, spe)
                if epoch != order_epoch:
                    order_epoch, order = epoch, self.train_loader.epoch_order(epoch)
                x, y = self.train_loader.batch(order, index, self.generator, epoch=epoch)
                x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
                lr = lr_at(cfg, self.step, self.schedule_steps)
                set_group_hyperparameters(self.optimizer, cfg, lr, epoch)
                loss, correct = train_step(self.forward_model, self.model, self.optimizer, x, y, cfg,
                                           autocast(self.device, self.precision))
                loss_value = loss.item()
                bad, stop = self.dist.any([float(not math.isfinite(loss_value)), float(caught["signum"])],
                                          self.device)
                if bad:
                    raise NonFiniteLossError(f"loss became {loss_value} at step {self.step + 1}; "
                                             f"{stopped(self.run_dir, self._saved)}")
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
                        record.update(test_loss=last_eval["loss"], test_acc=last_eval["accuracy"],
                                      test_top5=last_eval["top5_accuracy"])  # None under 5 classes
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
