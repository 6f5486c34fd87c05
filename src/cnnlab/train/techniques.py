"""The Trainer's fast-training options (airbench, K. Jordan 2024, arXiv:2404.00498), as general TrainConfig keys.

This module checks those keys and holds the Trainer's hooks for them, so that each technique lives in one place:

* ``prepare_model``: ``dirac_init`` and ``whiten_init`` on a new run (``cnnlab.train.whitening``); on a resumed
  run only the whitening filters' freeze is applied again (the weights come from the checkpoint).
* ``split_param_groups`` / ``set_group_hyperparameters``: normalisation-layer parameters in their own
  parameter group (``norm_lr_scale``, ``norm_weight_decay``) and the whitening conv's bias in another, trained
  for ``whiten_bias_epochs`` only. Each group carries its kind under ``cnnlab_group``; its lr and weight decay
  are written before every step from the config, so a resume or a changed config cannot leave stale values.
* ``build_ema``: the weight average of ``ema_decay`` / ``ema_every`` / ``ema_warmup_power`` / ``lookahead``
  (``cnnlab.train.ema``), restored from a checkpoint when resuming.
* test-time augmentation (``tta``) is ``cnnlab.train.tta``; ``crop_reflect`` and ``alternate_flips`` are the
  loader's (``cnnlab.data.Augment``); the ``onecycle_linear`` schedule is ``cnnlab.train.optim.lr_at``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from cnnlab.data import normalize
from cnnlab.train.ema import ModelEMA
from cnnlab.train.tta import TTA_MODES
from cnnlab.train.whitening import WHITEN_IMAGES, first_conv, init_dirac, init_whitening

if TYPE_CHECKING:
    from cnnlab.data import BatchLoader
    from cnnlab.train.config import TrainConfig

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def check_options(cfg: TrainConfig) -> None:
    """Refuse values of the fast-training keys that need another key set (their float ranges are the config's)."""
    if cfg.tta not in TTA_MODES:
        raise ValueError(f"config tta={cfg.tta!r} is not one of null, flip, flip_translate")
    if cfg.lookahead and cfg.ema_decay is None:
        raise ValueError("config lookahead copies the weight average back: set ema_decay too (airbench: 0.95**5)")
    if cfg.whiten_bias_epochs is not None:
        if cfg.whiten_bias_epochs < 0:
            raise ValueError(f"config whiten_bias_epochs must be >= 0 or null, got {cfg.whiten_bias_epochs}")
        if not cfg.whiten_init:
            raise ValueError("config whiten_bias_epochs applies to the whitening conv: set whiten_init=true too")
    if cfg.alternate_flips and not cfg.hflip:
        raise ValueError("config alternate_flips chooses how images are flipped: set hflip=true too")


# ---------------------------------------------------------------- model preparation
def prepare_model(model: nn.Module, cfg: TrainConfig, loader: BatchLoader, *, fresh: bool) -> None:
    """Apply ``dirac_init`` then ``whiten_init`` (from ``loader``'s first training images) to a new model;
    on a resumed one (``fresh=False``) only freeze the whitening filters again."""
    if fresh and cfg.dirac_init:
        init_dirac(model)
    if cfg.whiten_init:
        conv = first_conv(model)
        if fresh:
            images = normalize(loader.x[:WHITEN_IMAGES], loader.mean, loader.std, channels_last=False)
            init_whitening(conv, images)
        conv.weight.requires_grad_(False)


# ---------------------------------------------------------------- parameter groups
def _grouped(cfg: TrainConfig) -> bool:
    return cfg.norm_lr_scale != 1.0 or cfg.norm_weight_decay is not None or cfg.whiten_bias_epochs is not None


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """Trainable parameters by kind: ``main``, ``norm`` (normalisation layers), ``whiten_bias``; empty kinds left
    out. Without group options: one ``main`` group of every trainable parameter."""
    kinds: dict[str, list[nn.Parameter]] = {"main": [], "norm": [], "whiten_bias": []}
    whiten_bias = first_conv(model).bias if cfg.whiten_bias_epochs is not None else None
    split_norm = cfg.norm_lr_scale != 1.0 or cfg.norm_weight_decay is not None
    seen: set[int] = set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if p is whiten_bias:
                kinds["whiten_bias"].append(p)
            elif split_norm and isinstance(module, NORM_TYPES):
                kinds["norm"].append(p)
            else:
                kinds["main"].append(p)
    return [{"params": ps, "cnnlab_group": kind} for kind, ps in kinds.items() if ps]


def split_param_groups(optimizer: torch.optim.Optimizer, model: nn.Module, cfg: TrainConfig) -> None:
    """Replace a new optimiser's single group by the groups of ``param_groups`` when the config asks for them."""
    if not _grouped(cfg):
        return
    if optimizer.state:
        raise ValueError("split_param_groups needs an optimiser that has not stepped yet")
    optimizer.param_groups.clear()  # add_param_group fills each group in from the optimiser's own defaults
    for group in param_groups(model, cfg):
        optimizer.add_param_group(group)


def set_group_hyperparameters(optimizer: torch.optim.Optimizer, cfg: TrainConfig, lr: float, epoch: int) -> None:
    """Write the step's learning rate (and each group's weight decay) into every parameter group."""
    for group in optimizer.param_groups:
        kind = group.get("cnnlab_group", "main")
        if kind == "norm":
            group["lr"] = lr * cfg.norm_lr_scale
            group["weight_decay"] = cfg.weight_decay if cfg.norm_weight_decay is None else cfg.norm_weight_decay
        elif kind == "whiten_bias":  # lr 0 rather than requires_grad: DDP's buckets and the state stay as built
            group["lr"] = lr if epoch < cfg.whiten_bias_epochs else 0.0
            group["weight_decay"] = cfg.weight_decay
        else:
            group["lr"] = lr
            if "cnnlab_group" in group:
                group["weight_decay"] = cfg.weight_decay


# ---------------------------------------------------------------- weight average
def build_ema(model: nn.Module, cfg: TrainConfig, checkpoint: dict[str, torch.Tensor] | None) -> ModelEMA | None:
    """The weight average the config asks for (None without ``ema_decay``), continued from ``checkpoint``."""
    if cfg.ema_decay is None:
        return None
    ema = ModelEMA(model, cfg.ema_decay, cfg.ema_every, cfg.ema_warmup_power, cfg.lookahead)
    if checkpoint is not None:
        ema.load(checkpoint)
    return ema
