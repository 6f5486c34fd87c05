"""What a run is made of: its device and autocast precision, its network (a zoo name or your callable), and the
checks that its data and its network fit together. Shared by the Trainer and by loading a trained run (runs.py).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from cnnlab.data import ArrayDataset, check_labels
from cnnlab.train.config import TrainConfig
from cnnlab.train.distributed import torchrun_env


# ---------------------------------------------------------------- device and precision
def resolve_device(name: str) -> torch.device:
    """``auto``: the local CUDA device under torchrun or cuda:0 when present, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            # more local ranks than GPUs (an experiment sharing its runs over processes) share them in turn
            return torch.device("cuda", torchrun_env()[2] % torch.cuda.device_count())
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


def autocast(device: torch.device, precision: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``precision`` on ``device``; nothing (float32) when ``precision`` is None."""
    return contextlib.nullcontext() if precision is None else torch.autocast(device.type, dtype=precision)


# ---------------------------------------------------------------- the network
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
                         f"{first_line(exc)}") from exc


def check_input(model: nn.Module, cfg: TrainConfig, image_shape: tuple[int, ...], device: torch.device) -> None:
    """Fail before training when ``model`` cannot take H x W x C images (size or channels), in one line."""
    h, w, c = image_shape
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, c, h, w, device=device))
    except Exception as exc:  # a user's network may raise anything; say which network and why, in one line
        hint = (f"; for {c}-channel images try --set \"model_options={{'in_channels': {c}}}\""
                if c != 3 and "in_channels" not in cfg.model_options else "")
        kind = "" if isinstance(exc, (ValueError, RuntimeError)) else f"{type(exc).__name__}: "
        raise ValueError(f"{cfg.model} cannot take the {c}x{h}x{w} images of {cfg.data}: "
                         f"{kind}{first_line(exc)}{hint}") from exc
    finally:
        model.train(was_training)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------- the data
def check_not_empty(ds: ArrayDataset, split: str) -> None:
    """One line when the ``training`` or ``test`` set holds no image."""
    if len(ds) == 0:
        field = "--train-file / --data-dir" if split == "training" else "--test-file / --data-dir"
        raise ValueError(f"the {split} set{f' {ds.source}' if ds.source else ''} is empty (0 images); check {field}")


def class_names(classes: tuple[str, ...]) -> str:
    """Class names for a message: the first six, and how many there are in all."""
    return ", ".join(classes[:6]) + (f", ... ({len(classes)} in all)" if len(classes) > 6 else "")


def run_classes(train: ArrayDataset, test: ArrayDataset, wanted: int | None,
                notes: list[str]) -> tuple[int, tuple[str, ...]]:
    """The class count and names of a run: ``num_classes`` when set, else what the data's metadata names, else
    the labels' range (said in ``notes``). Every label of both splits must fall in it."""
    named = next((ds for ds in (train, test) if not ds.inferred_classes), None)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise ValueError(f"training images are {train.x.shape[1:]} but test images {test.x.shape[1:]}; "
                         f"both splits must share one size")
    if not (train.inferred_classes or test.inferred_classes) and train.classes != test.classes:
        raise ValueError(f"the training set names classes ({class_names(train.classes)}) but the test set "
                         f"{test.source} names ({class_names(test.classes)}); both splits must share one class list")
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
