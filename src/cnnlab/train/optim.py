"""Optimisers and learning-rate schedules of the papers. A schedule is a pure function of the step, so its
whole state is the step number (saved in every checkpoint)."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.train.config import TrainConfig

# settings a resume may change only when asked to by name (Trainer(allow_changes=...), --allow-change): they
# change the optimisation from that step on, as when a diverged run is continued with a lower lr
OPTIMIZATION_KEYS = ("lr", "momentum", "nesterov", "weight_decay", "rmsprop_decay", "rmsprop_eps", "grad_clip",
                     "label_smoothing", "aux_weights", "gamma", "milestones", "decay_every", "warmup_steps",
                     "warmup_lr", "onecycle_pct")
# schedules whose lr at a step depends on the run's length (the others are functions of the step alone, but a
# step schedule with milestones given as fractions of the run depends on it too: length_dependent)
LENGTH_DEPENDENT = ("cosine", "onecycle", "onecycle_linear")


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), RMSProp (decay, epsilon as in Inception-v3) or AdamW, weight decay on all weights."""
    return _build([p for p in model.parameters() if p.requires_grad], cfg)


def set_hyperparameters(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> None:
    """Write ``cfg``'s settings (momentum, weight decay, ...) into every parameter group. Loading an optimiser's
    state brings back the saved ones; after a resume that changed them, the config's must hold."""
    defaults = _build([torch.zeros(1, requires_grad=True)], cfg).defaults
    for group in optimizer.param_groups:
        group.update(defaults)
        if isinstance(optimizer, torch.optim.RMSprop) and group["momentum"] > 0:
            for p in group["params"]:  # RMSprop makes this buffer only in a fresh state: momentum 0 -> 0.9
                state = optimizer.state.get(p)
                if state and "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def _build(params: list, cfg: TrainConfig) -> torch.optim.Optimizer:
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
    if cfg.schedule == "onecycle_linear":
        # airbench (arXiv:2404.00498): linear from lr x lr_start_factor to lr over the first onecycle_pct of
        # the run, then linear down to lr x lr_end_factor at its end
        rise = max(1, round(cfg.onecycle_pct * total_steps))
        if step < rise:
            return cfg.lr * (cfg.lr_start_factor + (1 - cfg.lr_start_factor) * step / rise)
        t = min(1.0, (step - rise) / max(1, total_steps - rise))
        return cfg.lr * (1 + (cfg.lr_end_factor - 1) * t)
    if step < cfg.warmup_steps:
        return cfg.warmup_lr  # constant warm-up, as ResNet-110 on CIFAR (He et al. 2016, Sec. 4.2)
    if cfg.schedule == "step":
        return cfg.lr * cfg.gamma ** sum(step >= m for m in milestone_steps(cfg.milestones, total_steps))
    if cfg.schedule == "exponential":
        return cfg.lr * cfg.gamma ** (step // cfg.decay_every) if cfg.decay_every > 0 else cfg.lr
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * (1 + math.cos(math.pi * min(1.0, t))) / 2
    return cfg.lr


def relative(milestones: tuple[int | float, ...]) -> bool:
    """Whether ``milestones`` are fractions of the run (floats in (0, 1)) rather than optimiser steps (ints)."""
    return any(isinstance(m, float) for m in milestones)


def milestone_steps(milestones: tuple[int | float, ...], total_steps: int) -> tuple[int, ...]:
    """The optimiser steps at which a step schedule multiplies the lr by gamma in a run of ``total_steps``: a
    fraction f is step max(1, floor(f x total_steps)) (0.5 and 0.75 of 64,000 are the ResNet paper's 32k and
    48k); integer steps are taken as they are."""
    if not relative(milestones):
        return tuple(int(m) for m in milestones)
    return tuple(max(1, math.floor(m * total_steps)) for m in milestones)


def length_dependent(cfg: TrainConfig) -> bool:
    """Whether the lr at a step depends on the run's length: cosine and one-cycle schedules, and a step schedule
    whose milestones are fractions of the run."""
    return cfg.schedule in LENGTH_DEPENDENT or (cfg.schedule == "step" and relative(cfg.milestones))


def milestone_warning(cfg: TrainConfig, total_steps: int) -> str | None:
    """A one-line warning when a step schedule's integer milestones lie at or past the run's last step, where
    they never act (such as the paper's 32000 and 48000 in a 30-epoch run); None when all of them act."""
    if cfg.schedule != "step" or relative(cfg.milestones):
        return None
    late = [m for m in cfg.milestones if m >= total_steps]
    if not late:
        return None
    acting = len(cfg.milestones) - len(late)
    what = "never drops" if not acting else f"drops at only {acting} of its {len(cfg.milestones)} milestones"
    return (f"milestones {', '.join(map(str, late))} (optimiser steps) lie at or past this run's last step "
            f"({total_steps}): the lr {what}; give milestones as fractions of the run to scale them with it, "
            f"e.g. --set milestones=[0.5,0.75] (the ResNet recipe: /10 at 50% and 75%)")


def describe_schedule(cfg: TrainConfig, total_steps: int) -> str:
    """The lr schedule of a run of ``total_steps`` in one phrase, e.g. ``step: lr 0.1, x0.1 at steps 5850, 8775
    (50%, 75%)``."""
    lr = f"lr {cfg.lr:.3g}"
    if cfg.schedule == "onecycle":
        return (f"onecycle: lr {cfg.lr / 25:.3g} up to {cfg.lr:.3g} over {cfg.onecycle_pct:.0%} of the run, then "
                f"down to {cfg.lr / 1e4:.3g}")
    if cfg.schedule == "onecycle_linear":
        return (f"onecycle_linear: lr {cfg.lr * cfg.lr_start_factor:.3g} up to {cfg.lr:.3g} over "
                f"{cfg.onecycle_pct:.0%} of the run, then down to {cfg.lr * cfg.lr_end_factor:.3g}")
    warmup = f"lr {cfg.warmup_lr:g} for {cfg.warmup_steps} steps, then " if cfg.warmup_steps else ""
    if cfg.schedule == "step":
        steps = milestone_steps(cfg.milestones, total_steps)
        if not steps:
            return f"step: {warmup}{lr}, no milestones"
        at = ", ".join(str(m) for m in steps)
        share = ", ".join(f"{m:.0%}" if relative(cfg.milestones) else f"{m / max(1, total_steps):.0%}"
                          for m in cfg.milestones)
        return f"step: {warmup}{lr}, x{cfg.gamma:g} at steps {at} ({share} of {total_steps})"
    if cfg.schedule == "exponential":
        every = f"x{cfg.gamma:g} every {cfg.decay_every} steps" if cfg.decay_every > 0 else "constant (decay_every 0)"
        return f"exponential: {warmup}{lr}, {every}"
    if cfg.schedule == "cosine":
        return f"cosine: {warmup}{lr} down to 0 over {total_steps} steps"
    return f"constant: {warmup}{lr}"
