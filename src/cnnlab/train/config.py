"""TrainConfig: every knob of a training run in one frozen dataclass, with type-checked files and overrides."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("step", "cosine", "onecycle", "exponential", "constant", "onecycle_linear")
PRECISIONS = ("auto", "bf16", "fp32")
# float keys: what each must be besides finite (NaN and infinity are refused for all of them)
_FLOAT_RANGES = (
    ("lr", lambda v: v > 0, "> 0"), ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("weight_decay", lambda v: v >= 0, ">= 0"), ("rmsprop_decay", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("rmsprop_eps", lambda v: v > 0, "> 0"), ("gamma", lambda v: v > 0, "> 0"),
    ("warmup_lr", lambda v: v > 0, "> 0"), ("onecycle_pct", lambda v: 0 < v < 1, "in (0, 1)"),
    ("label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)"), ("aux_weights", lambda v: v >= 0, ">= 0 each, or null"),
    ("grad_clip", lambda v: v > 0, "> 0, or null"),
    # the fast-training keys (train/techniques.py)
    ("norm_lr_scale", lambda v: v > 0, "> 0"), ("norm_weight_decay", lambda v: v >= 0, ">= 0, or null"),
    ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1), or null"), ("ema_warmup_power", lambda v: v >= 0, ">= 0"),
    ("lr_start_factor", lambda v: v > 0, "> 0"), ("lr_end_factor", lambda v: v >= 0, ">= 0"),
)


@dataclass(frozen=True)
class TrainConfig:
    """A training run. Defaults are the CIFAR-10 ResNet recipe (He et al. 2016, Sec. 4.2): SGD momentum 0.9,
    weight decay 1e-4, batch 128, lr 0.1 divided by 10 at 50% and 75% of the run (the paper: 32k and 48k of 64k
    iterations), 164 epochs (~64k iterations)."""

    model: str = "resnet20"  # registry name, or "package.module:callable" returning an nn.Module
    model_options: dict = field(default_factory=dict)
    data: str = "cifar10"
    data_dir: str = "data"
    train_file: str | None = None  # --data npz / imagefolder
    test_file: str | None = None
    download: bool = True
    subset: int | None = None  # the first N training images
    num_classes: int | None = None  # default: the data set's class count
    image_size: int | None = None  # imagefolder: resize every image to this square size
    epochs: int = 164
    max_steps: int | None = None  # stop after this many optimiser steps (also the schedule's length)
    batch_size: int = 128  # global: split across processes under torchrun
    sync_bn: bool = False  # torchrun on GPUs: BatchNorm statistics over the global batch, not each process's
    eval_batch_size: int = 500
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    rmsprop_decay: float = 0.9  # Inception-v3 (Szegedy et al. 2016, Sec. 8): RMSProp decay 0.9, epsilon 1.0
    rmsprop_eps: float = 1.0
    schedule: str = "step"
    # step schedule: lr x gamma at each milestone, given as fractions of the run (0.5: half-way, so any --epochs
    # gets the paper's shape) or as integer optimiser steps (32000); fractions and steps are not mixed
    milestones: tuple[int | float, ...] = (0.5, 0.75)
    gamma: float = 0.1  # step: factor at each milestone; exponential: factor every decay_every steps
    decay_every: int = 0  # exponential schedule period in steps (Inception-v3: 0.94 every 2 epochs)
    warmup_steps: int = 0  # ResNet-110: lr 0.01 for ~400 iterations, then 0.1 (He et al. 2016, Sec. 4.2)
    warmup_lr: float = 0.01
    onecycle_pct: float = 0.25  # fraction of the run spent rising from lr/25 to lr (Smith & Topin 2017)
    label_smoothing: float = 0.0
    aux_weights: tuple[float, ...] | None = None  # None: 0.3 per aux head (GoogLeNet, Szegedy et al. 2015)
    grad_clip: float | None = None  # max global gradient norm
    crop_padding: int = 4
    hflip: bool = True
    precision: str = "auto"  # auto: bfloat16 autocast where the hardware has it, else fp32
    channels_last: bool = True
    compile: bool = False  # opt-in: 1.3x a CPU step once compiled, but 5-190 s to compile first (BENCHMARKS.md)
    device: str = "auto"
    seed: int = 0
    log_every: int = 1  # steps between metric lines
    checkpoint_every: int = 0  # steps between checkpoints; 0: at the end of each epoch only
    eval_every: int = 1  # epochs between test-set evaluations
    tensorboard: bool = False  # also write TensorBoard event files to RUN_DIR/tensorboard (cnnlab[tensorboard])
    # fast training (airbench, K. Jordan 2024, arXiv:2404.00498); the recipe cifar10-94 sets them (train/recipes.py)
    lr_start_factor: float = 0.2  # onecycle_linear: lr x this at step 0, rising linearly to lr at onecycle_pct
    lr_end_factor: float = 0.07  # onecycle_linear: lr x this at the last step, falling linearly from the peak
    norm_lr_scale: float = 1.0  # lr multiplier of normalisation-layer parameters (airbench: 64 for BN biases)
    norm_weight_decay: float | None = None  # their weight decay; null: weight_decay (0: no decay on BN)
    crop_reflect: bool = False  # pad crops by mirroring the border pixels instead of zeros
    alternate_flips: bool = False  # hflip: each image flipped in alternate epochs, at random only in the first
    dirac_init: bool = False  # every conv's first C_in filters start as the identity (partial dirac init)
    whiten_init: bool = False  # first conv := patch whitening of the first 5000 training images, frozen
    whiten_bias_epochs: int | None = None  # whiten_init: epochs the first conv's bias trains; null: all
    ema_decay: float | None = None  # average the weights and BN buffers (EMA); evaluated and saved instead
    ema_every: int = 1  # optimiser steps between EMA updates
    ema_warmup_power: float = 0.0  # decay x (step / total_steps) ** power: forgets the init early (airbench: 3)
    lookahead: bool = False  # copy the EMA into the trained weights at every update (Lookahead)
    tta: str | None = None  # evaluation views, logits averaged: null (the image), flip (+ its mirror image),
    # flip_translate (+ both shifted a pixel up-left and down-right: six views, as airbench)

    def __post_init__(self) -> None:
        from cnnlab.data import DATASETS

        for f in dataclasses.fields(self):  # TrainConfig(lr="0.1") is as wrong as --set lr=abc: a TypeError
            value = getattr(self, f.name)
            typed = _coerce(f.name, value, _hints()[f.name])
            if typed is not value:
                object.__setattr__(self, f.name, typed)  # 1 -> 1.0, [10, 20] -> (10, 20)
        for name, allowed in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("precision", PRECISIONS),
                              ("data", DATASETS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"config {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every", "eval_every", "ema_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"config {name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps", "subset", "num_classes", "image_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"config {name} must be >= 1 or null, got {getattr(self, name)}")
        for name in ("checkpoint_every", "decay_every", "warmup_steps", "crop_padding"):
            if getattr(self, name) < 0:
                raise ValueError(f"config {name} must be >= 0, got {getattr(self, name)}")
        _check_milestones(self.milestones)
        for name, ok, allowed in _FLOAT_RANGES:
            value = getattr(self, name)
            for v in value if isinstance(value, tuple) else () if value is None else (value,):
                if not (math.isfinite(v) and ok(v)):
                    raise ValueError(f"config {name} must be a finite number {allowed}, got {value}")
        if self.device != "auto":
            import torch

            try:
                torch.device(self.device)
            except (RuntimeError, ValueError):
                raise ValueError(f"config device={self.device!r} is not a device: use auto, cpu, cuda, cuda:N "
                                 f"or mps") from None
        from cnnlab.train.techniques import check_options

        check_options(self)  # the fast-training keys above

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with ``changes``, each type-checked."""
        return from_dict({**self.to_dict(), **changes})


def _check_milestones(milestones: tuple[int | float, ...]) -> None:
    """All fractions of the run in (0, 1), or all integer steps >= 0."""
    example = "fractions of the run such as [0.5, 0.75], or integer optimiser steps such as [32000, 48000]"
    fractions = [m for m in milestones if isinstance(m, float)]
    for m in fractions:
        if not 0 < m < 1:
            raise ValueError(f"config milestones: {m} is neither a fraction of the run in (0, 1) nor an integer "
                             f"step; give {example}")
    if fractions and len(fractions) != len(milestones):
        raise ValueError(f"config milestones {list(milestones)} mixes fractions of the run and step numbers; give "
                         f"{example}")
    if any(m < 0 for m in milestones):
        raise ValueError(f"config milestones must be steps >= 0, got {list(milestones)}")


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) if isinstance(tp, type) else str(tp).replace("typing.", "")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """``value`` as type ``tp``, or TypeError naming the key, the expected type and the value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except TypeError:
                pass
    elif origin is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(key, v, args[0]) for v in value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # a bare number: a 1-tuple
            return (_coerce(key, value, args[0]),)
    elif tp is dict or origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise TypeError(f"config key {key!r} expects {_describe(tp)}, got {value!r} ({type(value).__name__})")


def _check_key(key: str) -> Any:
    hints = _hints()
    if key not in hints:
        close = difflib.get_close_matches(key, list(hints), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(hints)}"
        raise KeyError(f"unknown config key {key!r}{hint}")
    return hints[key]


def from_dict(values: dict[str, Any], base: TrainConfig | None = None) -> TrainConfig:
    """A config from ``base`` (default: the defaults) with ``values`` applied; unknown keys and wrong types raise."""
    merged = (base or TrainConfig()).to_dict()
    for key, value in values.items():
        merged[key] = _coerce(key, value, _check_key(key))
    return TrainConfig(**{k: _coerce(k, v, _hints()[k]) for k, v in merged.items()})


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` -> (key, typed value). Values are Python literals; a bare word is a string; none / null
    is None only for keys that may be None (for others it is the text, e.g. a folder named none)."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value, e.g. lr=0.05")
    key, raw = (part.strip() for part in text.split("=", 1))
    tp = _check_key(key)
    lowered = raw.lower()
    if lowered in ("none", "null"):
        value: Any = None if type(None) in typing.get_args(tp) else raw
    elif lowered in ("true", "false"):
        value = lowered == "true"
    else:
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw  # a bare word such as cosine or ../data
    if tp is str or str in typing.get_args(tp):
        if not isinstance(value, str) and value is not None:
            value = raw  # a path like 123 or a name like 1e3 stays text for a str key
    return key, _coerce(key, value, tp)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping of config keys (not yet checked)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"config file {path} is a folder; --config takes a YAML or JSON file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            import yaml

            values = yaml.safe_load(text)
    except Exception as exc:  # both parsers raise their own error classes
        raise ValueError(f"config file {path} cannot be parsed: {str(exc).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a mapping of key: value, got {type(values).__name__}")
    return values
