"""A trained run as something to use: its test accuracy (``evaluate_run``) and its network (``load_run``).

Both read a run directory's ``best`` (or ``last``) checkpoint with safetensors only, refuse one holding NaN or
infinity, and take the run's EMA average when it kept one (that is what the run evaluated and called best). A
network named ``package.module:callable`` by the checkpoint is your code, not cnnlab's: it is imported only when
you name it yourself (``model=``) or trust the run (``trust_code=True``, CLI ``--trust-run-code``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data import ArrayDataset, BatchLoader, check_labels, load_dataset
from cnnlab.models import check_trusted
from cnnlab.train.checkpoint import first_non_finite, fork_rng, load_checkpoint, restore
from cnnlab.train.components import (
    build_model,
    check_not_empty,
    class_names,
    resolve_device,
    resolve_precision,
)
from cnnlab.train.config import TrainConfig, from_dict
from cnnlab.train.ema import load_ema_weights
from cnnlab.train.evaluate import evaluate
from cnnlab.train.tta import TTA_MODES

CHECKPOINTS = ("best", "last")


@dataclass(frozen=True)
class RunInfo:
    """What a network loaded by ``load_run`` was trained on; ``normalize`` prepares images as training did."""

    run_dir: str
    checkpoint: str
    step: int
    model: str  # the registry name or package.module:callable the run built
    model_options: dict[str, Any]
    num_classes: int
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, in [0, 1] units (torchvision's Normalize takes these)
    std: tuple[float, ...]
    image_shape: tuple[int, int, int] | None  # C, H, W of the training images (None: an older checkpoint)
    ema: bool = False  # the weights are the run's moving average
    config: dict[str, Any] = field(default_factory=dict, repr=False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images (0..255) or float images in [0, 1], (N, C, H, W) or (C, H, W) -> the network's input."""
        if images.ndim not in (3, 4) or images.shape[-3] != len(self.mean):
            raise ValueError(f"images must be (N, C, H, W) or (C, H, W) with C = {len(self.mean)}, got shape "
                             f"{tuple(images.shape)}")
        x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        mean = torch.tensor(self.mean, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(-1, 1, 1)
        return (x - mean) / std


def open_checkpoint(run_dir: str | Path, which: str = "best") -> tuple[Path, dict[str, torch.Tensor], dict[str, Any],
                                                                        TrainConfig]:
    """(path, tensors, meta, config) of a run's ``best`` checkpoint (``last`` when the run saved no best yet) or
    its ``last``; a checkpoint with NaN or infinite weights is refused."""
    if which not in CHECKPOINTS:
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints").is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no checkpoints/); give the --out of a "
                                f"cnnlab train run")
    path = run_dir / "checkpoints" / f"{which}.safetensors"
    if which == "best" and not path.exists():
        path = run_dir / "checkpoints" / "last.safetensors"
    tensors, meta = load_checkpoint(path)
    bad = first_non_finite({k: v for k, v in tensors.items() if k.startswith(("model/", "ema/"))})
    if bad is not None:
        raise ValueError(f"{path} holds NaN or infinity in {bad.replace('model/', '', 1)}: the run diverged and its "
                         f"weights predict nothing; use another checkpoint (--checkpoint best / last) or resume the "
                         f"run with a lower lr")
    return path, tensors, meta, from_dict(meta["config"])


def network(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], cfg: TrainConfig,
            model: nn.Module | str | None, trust_code: bool) -> tuple[nn.Module, bool]:
    """The checkpoint's network with its weights (the EMA average when there is one), and whether it is the
    average. ``model`` (a module, or a name built with the run's options) replaces the network it names."""
    if model is None:
        check_trusted(cfg.model, f"checkpoint {path}", trusted=trust_code)
    if isinstance(model, nn.Module):
        net = model
    else:
        with fork_rng():  # its random init is overwritten: the caller's torch RNG need not advance for it
            net = build_model(cfg, int(meta["num_classes"]), name=model)
    restore(tensors, meta, net, None)
    return net, load_ema_weights(net, tensors)


def _check_test_set(test: ArrayDataset, meta: dict[str, Any], name: str) -> None:
    """A test set for a trained run: images of its shape, its classes, labels in range."""
    what = test.source or name
    check_not_empty(test, "test")
    shape = meta.get("image_shape")  # H, W, C; older checkpoints know only C (the length of mean)
    got = tuple(test.x.shape[1:])
    if (shape is not None and tuple(shape) != got) or len(meta["mean"]) != got[-1]:
        h, w, c = shape if shape is not None else ("H", "W", len(meta["mean"]))
        raise ValueError(f"{what} holds {got[2]}x{got[0]}x{got[1]} images (CxHxW) but the run was trained on "
                         f"{c}x{h}x{w}; evaluate it on images of its own shape")
    classes, n = tuple(meta["classes"]), int(meta["num_classes"])
    if not test.inferred_classes and test.num_classes != n:
        raise ValueError(f"{what} names {test.num_classes} classes ({class_names(test.classes)}) but the run was "
                         f"trained on {n}; evaluate it on a test set of the same classes")
    if not test.inferred_classes and meta.get("classes_named", True) and test.classes != classes:
        raise ValueError(f"{what} names classes ({class_names(test.classes)}) but the run was trained on "
                         f"({class_names(classes)}); evaluate it on a test set of the same classes")
    check_labels(test.y, n, what, f"the run has {n} classes")


def evaluate_run(run_dir: str | Path, which: str = "best", test_data: ArrayDataset | None = None,
                 model: nn.Module | str | None = None, *, test_file: str | Path | None = None,
                 data_dir: str | Path | None = None, trust_code: bool = False,
                 tta: str | None = "run") -> dict[str, Any]:
    """Top-1, top-5 and per-class accuracy, loss and confusion matrix of a run's ``best`` (or ``last``) checkpoint,
    as ``cnnlab.train.evaluate`` computes them, plus ``checkpoint``, ``step`` and ``test_set``.

    The test set is the run's own unless ``test_data`` is given, or ``test_file`` (npz / imagefolder runs:
    another test file of the same format, e.g. a re-encoded copy) or ``data_dir`` (official formats: where
    the files are now) points elsewhere. The run's training statistics normalise it either way, and its
    precision applies; ``tta`` is the run's test-time augmentation (``"run"``), or None / "flip" /
    "flip_translate" to evaluate with that instead (the result's ``tta`` says which ran).
    ``model`` (a module, or a name to build with the run's options) replaces the network the checkpoint
    names; a ``package.module:callable`` named only by the checkpoint is refused unless ``trust_code``.
    A checkpoint with NaN or infinite weights, or a test set whose image shape, class count or class list differs
    from the run's, is refused: either would give an accuracy that means nothing.
    """
    if tta != "run" and tta not in TTA_MODES:
        raise ValueError(f"tta must be 'run' (the run's own), None, 'flip' or 'flip_translate', got {tta!r}")
    path, tensors, meta, cfg = open_checkpoint(run_dir, which)
    official = cfg.data not in ("npz", "imagefolder")
    if test_file is not None and official:
        raise ValueError(f"the run trained on --data {cfg.data}, read from its official files; a test file applies "
                         f"to npz and imagefolder runs only: point --data-dir at the {cfg.data} files instead")
    if data_dir is not None and not official:
        raise ValueError(f"the run trained on --data {cfg.data}, read from {cfg.test_file}; --data-dir applies to "
                         f"the official data sets only: give another test set with --test-file")
    test_file = cfg.test_file if test_file is None else test_file
    device = resolve_device(cfg.device)
    test = test_data if test_data is not None else load_dataset(
        cfg.data, "test", cfg.data_dir if data_dir is None else data_dir, file=test_file, download=cfg.download,
        image_size=cfg.image_size)
    _check_test_set(test, meta, "the given test set" if test_data is not None else str(test_file or cfg.data))
    net, _ = network(path, tensors, meta, cfg, model, trust_code)
    net.to(device)
    loader = BatchLoader(test, cfg.eval_batch_size, meta["mean"], meta["std"], train=False,
                         device=device if device.type == "cuda" else "cpu", channels_last=cfg.channels_last)
    tta = cfg.tta if tta == "run" else tta
    result = evaluate(net, loader, num_classes=int(meta["num_classes"]), classes=meta["classes"], device=device,
                      precision=resolve_precision(cfg.precision, device), tta=tta)
    source = "given data" if test_data is not None else str(test_file or f"{cfg.data} test split")
    return {"checkpoint": str(path), "step": meta["step"], "test_set": source, "tta": tta, **result}


def load_run(run_dir: str | Path, which: str = "best", *, model: nn.Module | str | None = None,
             trust_code: bool = False, device: torch.device | str = "cpu") -> nn.Module:
    """The network of a run's ``best`` (or ``last``) checkpoint, in eval mode on ``device``, ready for inference.

    As with timm and torchvision models, it takes float images normalised with the training statistics, and
    returns logits; ``model.run_info`` (a ``RunInfo``) holds them (``mean``, ``std``, ``classes``, ...) and
    ``model.run_info.normalize(images)`` turns uint8 or [0, 1] images into that input::

        model = cnnlab.load_run("runs/resnet20")
        probs = model(model.run_info.normalize(images)).softmax(1)

    Its state dict is that of ``cnnlab.create_model(run_info.model, num_classes=run_info.num_classes,
    **run_info.model_options)``. A run that kept an EMA average gives the average (what it evaluated).
    ``model`` and ``trust_code``: as for ``evaluate_run``; the weights are read with safetensors, never pickle.
    """
    path, tensors, meta, cfg = open_checkpoint(run_dir, which)
    net, ema = network(path, tensors, meta, cfg, model, trust_code)
    shape = meta.get("image_shape")
    net.run_info = RunInfo(
        run_dir=str(run_dir), checkpoint=str(path), step=int(meta["step"]),
        model=model if isinstance(model, str) else cfg.model, model_options=dict(cfg.model_options),
        num_classes=int(meta["num_classes"]), classes=tuple(meta["classes"]), mean=tuple(meta["mean"]),
        std=tuple(meta["std"]), image_shape=(shape[2], shape[0], shape[1]) if shape is not None else None, ema=ema,
        config=cfg.to_dict())
    return net.to(device).eval()
