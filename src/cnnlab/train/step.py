"""One optimiser step's forward and backward, and what guards a run between steps: SIGINT / SIGTERM are caught
and answered at the next step's end (after a checkpoint), and NaN or infinity stops the run before anything
non-finite is saved."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.models import aux_loss
from cnnlab.train.checkpoint import first_non_finite
from cnnlab.train.config import TrainConfig
from cnnlab.train.ema import ModelEMA


class NonFiniteLossError(ValueError):
    """The loss, the weights or the optimiser state became NaN or infinite; nothing non-finite was saved, and
    the message names the checkpoints that hold the last finite state."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped the run after a checkpoint was written."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.signum = signum


def train_step(net: nn.Module, model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, cfg: TrainConfig, autocast: contextlib.AbstractContextManager,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward ``x`` through ``net`` (``model`` itself, or it wrapped in DDP / compiled) under ``autocast``,
    backward the loss (aux heads weighted, label smoothing), clip ``model``'s gradients; returns the loss and
    the count of correct predictions. The optimiser's step is the caller's, once the loss is known finite."""

    def criterion(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), target, label_smoothing=cfg.label_smoothing)

    with autocast:
        output = net(x)
        logits = output[0] if isinstance(output, tuple) else output
        loss = aux_loss(output, y, 0.3 if cfg.aux_weights is None else cfg.aux_weights, criterion)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    return loss.detach(), (logits.detach().argmax(1) == y).sum()


@contextlib.contextmanager
def catch_signals() -> Iterator[dict[str, int]]:
    """SIGINT/SIGTERM set ``caught["signum"]`` (on the main thread; elsewhere signals cannot be caught): the loop
    finishes its step, saves, and stops."""
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


def non_finite(model: nn.Module, ema: ModelEMA | None, optimizer: torch.optim.Optimizer) -> str | None:
    """The first weight, buffer, EMA or optimiser tensor holding NaN or infinity (None: all finite)."""
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {**model.state_dict(), **(ema.tensors() if ema is not None else {})}
    for param, state in optimizer.state.items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimiser {key} of {names.get(id(param), '?')}"] = value
    return first_non_finite(tensors)


def stopped(run_dir: Path, saved: dict[str, int]) -> str:
    """What a stop on NaN / infinity leaves (``saved``: the finite checkpoints and their steps), and how to go on."""
    kept = ", ".join(f"{name}.safetensors (step {step})" for name, step in sorted(saved.items()))
    where = f"the last finite state is in {run_dir / 'checkpoints'}: {kept}" if kept else "no checkpoint was saved yet"
    return (f"training stopped and nothing non-finite was saved; {where}; continue with a lower lr "
            f"(cnnlab train --resume {run_dir} --allow-change lr --lr LR) or set grad_clip")
