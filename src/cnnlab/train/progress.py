"""What a training run says while it runs, and the logs that standard tools read.

``Progress`` prints one start line (run directory, model and its cost, device, precision and why, steps, epochs,
schedule), then one line per epoch above a tqdm bar. The bar is drawn only on a terminal unless ``bar`` says
otherwise (the CLI turns it off under CI, whose logs keep every redraw), so redirected output holds these lines and no
carriage-return redraws; ``enabled=False`` prints nothing.

``RunLogs`` writes the run directory's metrics.jsonl (every record), metrics.csv (one row per epoch) and, when
asked, TensorBoard event files under tensorboard/ (``pip install 'cnnlab[tensorboard]'``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from cnnlab._io import read_jsonl
from cnnlab.train.checkpoint import atomic_write

log = logging.getLogger(__name__)

# a run logged with fewer columns gets these on resume: truncate_after rebuilds metrics.csv from metrics.jsonl
CSV_COLUMNS = ("epoch", "step", "train_loss", "train_acc", "test_loss", "test_acc", "test_top5", "lr",
               "images_per_s")
TENSORBOARD_HINT = "pip install 'cnnlab[tensorboard]'"


# ---------------------------------------------------------------- the start line
def precision_note(requested: str, used: torch.dtype | None, device: torch.device, native_bf16: bool) -> str:
    """The precision a run uses and why, e.g. ``bf16: native on this CPU`` or ``fp32: no native bf16 on this
    CPU``. ``native_bf16``: whether the CPU computes bfloat16 in hardware (the trainer's capability probe)."""
    name = "bf16" if used == torch.bfloat16 else "fp32" if used is None else str(used).replace("torch.", "")
    if requested == "fp32":
        return "fp32: asked for"
    if requested == "bf16":
        if device.type == "cpu":
            return f"bf16: asked for ({'native' if native_bf16 else 'emulated, slower than fp32'} on this CPU)"
        return f"{name}: asked for"
    if device.type == "cuda":
        return "bf16: supported by this GPU" if used is not None else "fp32: no bf16 on this GPU"
    if device.type == "cpu":
        return "bf16: native on this CPU" if used is not None else "fp32: no native bf16 on this CPU"
    return f"{name}: auto uses bf16 on CUDA and native-bf16 CPUs only"


def model_cost(model: nn.Module, image_shape: tuple[int, ...]) -> tuple[int, int | None]:
    """(parameters, multiply-adds per image at inference) of ``model`` for H x W x C images; MACs are None when
    the analyser cannot trace the network (a user's module may do anything)."""
    params = sum(p.numel() for p in model.parameters())
    h, w, c = image_shape
    try:
        from cnnlab.analysis import analyze

        return params, int(analyze(model, (c, h, w), training=False).macs)
    except Exception:  # noqa: BLE001 - the start line says "MACs n/a" rather than stopping the run
        return params, None


def _si(n: float) -> str:
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:g}"


def start_line(run_dir: Path, model: str, params: int, macs: int | None, device: torch.device, precision: str,
               step: int, total_steps: int, steps_per_epoch: int, schedule: str) -> str:
    """The line a run prints before it trains: what will happen, in one line."""
    epochs = total_steps / steps_per_epoch
    span = f"{epochs:.0f} epochs" if epochs == int(epochs) else f"{epochs:.2f} epochs"
    where = f", resuming at step {step}" if step else ""
    cost = f"{_si(params)} params, {_si(macs) + ' MACs/image' if macs is not None else 'MACs n/a'}"
    return (f"train {run_dir} | {model} ({cost}) | {device}, {precision} | {total_steps} steps ({span} of "
            f"{steps_per_epoch}){where} | schedule {schedule}")


# ---------------------------------------------------------------- per epoch
def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def epoch_line(record: dict[str, Any], epochs: int, elapsed: float, eta: float | None) -> str:
    """One epoch in one line: train loss and accuracy, test accuracy (when evaluated), lr, images/s, elapsed
    and ETA. ``record`` is the epoch's metrics.jsonl record."""
    parts = [f"epoch {record['epoch']}/{epochs}",
             f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%}"]
    if record.get("test_acc") is not None:
        parts.append(f"test loss {record['test_loss']:.4f} acc {record['test_acc']:.2%}")
    parts += [f"lr {record['lr']:.3g}", f"{record['images_per_s']:,.0f} img/s",
              f"elapsed {_duration(elapsed)}", f"ETA {_duration(eta) if eta is not None else '?'}"]
    return " | ".join(parts)


class Progress:
    """The start line, one line per epoch, and a progress bar on a terminal, on ``stream`` (default stderr).

    ``enabled=False`` prints nothing. ``bar``: draw a tqdm bar (default: only when ``stream`` is a terminal);
    without it the lines are all there is, with no carriage-return redraws."""

    def __init__(self, total_steps: int, step: int, *, enabled: bool = True, stream: TextIO | None = None,
                 bar: bool | None = None) -> None:
        self.enabled, self.stream = enabled, stream if stream is not None else sys.stderr
        self._first_step = step
        self._started = time.perf_counter()
        self._bar = None
        if bar is None:
            try:
                bar = self.stream.isatty()  # a terminal a bar can redraw on
            except (AttributeError, ValueError):  # a replaced or closed stream
                bar = False
        if enabled and bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=step, file=self.stream, unit="step", dynamic_ncols=True)

    def line(self, text: str) -> None:
        """Print ``text`` on its own line, above the bar when there is one."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream)  # clears the bar, prints, redraws it below
        else:
            print(text, file=self.stream, flush=True)

    def set_postfix(self, refresh: bool = False, **postfix: str) -> None:
        """Show ``postfix`` (loss=..., img_s=...) beside the bar, as tqdm's method of that name."""
        if self._bar is not None:
            self._bar.set_postfix(postfix, refresh=refresh)

    def update(self, n: int = 1) -> None:
        """``n`` optimiser steps done."""
        if self._bar is not None:
            self._bar.update(n)

    def epoch(self, record: dict[str, Any], epochs: int, step: int, stop_at: int) -> None:
        """The epoch line of ``record``; the ETA extrapolates this session's steps so far to ``stop_at``."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self._started
        done = step - self._first_step
        eta = elapsed / done * (stop_at - step) if done > 0 else None
        self.line(epoch_line(record, epochs, elapsed, eta))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# ---------------------------------------------------------------- files
class RunLogs:
    """metrics.jsonl (every record), metrics.csv (one row per epoch record) and, with ``tensorboard``, event
    files under tensorboard/; written only where ``enabled`` (rank 0)."""

    def __init__(self, run_dir: Path, enabled: bool, *, tensorboard: bool = False) -> None:
        self.path, self.csv_path = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
        self.tensorboard_dir = run_dir / "tensorboard"
        self.enabled = enabled
        self._writer: Any = None
        self._purge_step: int | None = None
        self._tensorboard = enabled and tensorboard and _tensorboard_available()

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` and any half-written last line (a run killed mid-write resumes cleanly).
        metrics.csv is rebuilt from the epoch records kept, so both files end at the same epoch (and a run
        logged before the CSV existed gains one); TensorBoard hides its events past ``step``."""
        if not self.enabled:
            return
        self._purge_step = step + 1 if step > 0 else None
        kept = [r for r in read_jsonl(self.path) if r.get("step", 0) <= step] if self.path.exists() else []
        if self.path.exists():
            atomic_write(self.path, "".join(json.dumps(r) + "\n" for r in kept))  # as write() wrote them
        if self.path.exists() or self.csv_path.exists():
            atomic_write(self.csv_path, _csv_text([r for r in kept if r.get("kind") == "epoch"], header=True))

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` to metrics.jsonl (an epoch record to metrics.csv too) and to TensorBoard."""
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if record.get("kind") == "epoch":
            header = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
            with open(self.csv_path, "a", newline="") as f:
                f.write(_csv_text([record], header=header))
        if self._tensorboard:
            self._add_scalars(record)

    def _add_scalars(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step: after a resume, the events a killed run wrote past its checkpoint are hidden
            self._writer = SummaryWriter(str(self.tensorboard_dir), purge_step=self._purge_step)
        if record.get("kind") == "step":
            tags = {"train/loss": "loss", "train/acc": "acc", "train/lr": "lr", "train/images_per_s": "images_per_s"}
        else:
            tags = {"epoch/train_loss": "train_loss", "epoch/train_acc": "train_acc", "test/loss": "test_loss",
                    "test/acc": "test_acc", "test/top5": "test_top5"}
        for tag, key in tags.items():
            if record.get(key) is not None:
                self._writer.add_scalar(tag, record[key], global_step=record["step"])

    def close(self) -> None:
        """Flush and close the TensorBoard writer (the JSONL and CSV files are closed after every write)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _csv_text(records: list[dict[str, Any]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(["" if r.get(c) is None else r[c] for c in CSV_COLUMNS])
    return out.getvalue()


def _tensorboard_available() -> bool:
    """Whether torch.utils.tensorboard imports; if not, one line says how to install it."""
    try:
        import torch.utils.tensorboard  # noqa: F401 - it imports the tensorboard package, an optional extra
    except ImportError:
        log.warning("tensorboard=true but the tensorboard package is not installed: no event files are written "
                    "(%s to enable them)", TENSORBOARD_HINT)
        return False
    return True
