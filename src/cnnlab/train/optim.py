"""Optimisers and learning-rate schedules of the papers. A schedule is a pure function of the step, so its
whole state is the step number (saved in every checkpoint)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.train.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), RMSProp (decay, epsilon as in Inception-v3) or AdamW, weight decay on all weights."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=cfg.rmsprop_decay, eps=cfg.rmsprop_eps,
                                   momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate for optimiser step ``step`` (0-based) of a run of ``total_steps`` steps."""
    if cfg.schedule == "onecycle":
        # one cycle (Smith & Topin 2017): cosine rise from lr/25 to lr, then cosine fall to lr/1e4
        rise = max(1, round(cfg.onecycle_pct * total_steps))
        start, end = cfg.lr / 25, cfg.lr / 1e4
        if step < rise:
            return start + (cfg.lr - start) * (1 - math.cos(math.pi * step / rise)) / 2
        t = min(1.0, (step - rise) / max(1, total_steps - rise))
        return end + (cfg.lr - end) * (1 + math.cos(math.pi * t)) / 2
    if step < cfg.warmup_steps:
        return cfg.warmup_lr  # constant warm-up, as ResNet-110 on CIFAR (He et al. 2016, Sec. 4.2)
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(step >= m for m in cfg.milestones)
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.gamma ** (step // cfg.decay_every) if cfg.decay_every > 0 else cfg.lr
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * (1 + math.cos(math.pi * min(1.0, t))) / 2
    return cfg.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Write ``lr`` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
