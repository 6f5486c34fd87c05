"""One evaluation for every caller: the Trainer's test pass, ``evaluate_run`` / ``cnnlab eval`` and your own code.

``evaluate(model, data)`` returns top-1 and top-5 accuracy, per-class accuracy, the mean cross-entropy loss and
the confusion matrix (rows: true class, columns: predicted), all from one pass over the data. Predictions are the
argmax of the logits averaged over the test-time-augmentation views (``tta``, see ``cnnlab.train.tta``). The
counts are summed in float64 and may be summed across processes (``reduce``) before any ratio is taken, so a test
set split over DDP ranks gives the numbers of the whole set, exactly those one process would get.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ArrayDataset, BatchLoader
from cnnlab.train.components import autocast
from cnnlab.train.tta import tta_logits

TOP_K = 5  # top-5 is reported when the data has at least this many classes


def evaluate(model: nn.Module, data: Iterable[tuple[torch.Tensor, torch.Tensor]] | ArrayDataset, *,
             num_classes: int | None = None, classes: Sequence[str] | None = None,
             mean: Sequence[float] | None = None, std: Sequence[float] | None = None, batch_size: int = 256,
             device: torch.device | str | None = None, precision: torch.dtype | None = None,
             tta: str | None = None, confusion: bool = True,
             reduce: Callable[[torch.Tensor], Any] | None = None) -> dict[str, Any]:
    """Accuracy of ``model`` on ``data``, in eval mode (its mode is restored afterwards), without gradients.

    ``data``: batches ``(x, y)`` of normalised float images (N, C, H, W) and int labels (a ``BatchLoader``, a
    ``torch.utils.data.DataLoader``), or an ``ArrayDataset`` of uint8 images, normalised here with the training
    ``mean`` / ``std`` (in [0, 1] units, as torchvision's ``Normalize``). ``num_classes`` defaults to
    ``len(classes)``, the data set's class count, or else the width of the model's output.
    ``precision``: the autocast dtype (None: float32). ``reduce``: called once on the float64 tensor of counts,
    in place (the Trainer passes its process group's all-reduce sum).

    Returns ``accuracy`` (top-1), ``top5_accuracy`` (None under 5 classes), ``per_class_accuracy`` (one entry per
    class, None for a class without test images), ``loss``, ``images``, ``classes`` and, when ``confusion``,
    the ``confusion`` matrix as nested lists.
    """
    if isinstance(data, ArrayDataset):
        if mean is None or std is None:
            raise ValueError("evaluate() on an ArrayDataset needs the training mean and std that normalise it "
                             "(cnnlab.data.channel_stats of the training images, or a run's model.run_info)")
        num_classes = num_classes or (len(classes) if classes else data.num_classes)
        classes = classes or data.classes
        data = BatchLoader(data, batch_size, mean, std, train=False, device="cpu", channels_last=False)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    if num_classes and classes and len(classes) != num_classes:
        raise ValueError(f"{len(classes)} class names for {num_classes} classes; give one name per class (or none)")
    n = num_classes or (len(classes) if classes else None)
    counts: torch.Tensor | None = None  # n*n confusion counts, then the top-5 hits and the loss sum
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device, precision):
            for x, y in data:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                logits = tta_logits(model, x, tta)  # float32, averaged over the views
                if n is None:
                    n = logits.shape[1]
                if counts is None:
                    counts = torch.zeros(n * n + 2, dtype=torch.float64, device=device)
                _add_batch(counts, logits, y, n)
    finally:
        model.train(was_training)
    if n is None:
        raise ValueError("evaluate() got no batches and no num_classes; give it data (or num_classes=)")
    if counts is None:  # an empty shard of a distributed test set: it still takes part in the sum
        counts = torch.zeros(n * n + 2, dtype=torch.float64, device=device)
    if reduce is not None:
        reduce(counts)
    return _metrics(counts.cpu(), n, classes, confusion)


def _add_batch(counts: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, n: int) -> None:
    if logits.ndim != 2 or logits.shape[1] != n:
        raise ValueError(f"the model gives outputs of shape {tuple(logits.shape)} but the data has {n} classes; "
                         f"build it with num_classes={n}")
    pairs = torch.bincount(y * n + logits.argmax(1), minlength=n * n)
    if pairs.numel() > n * n:  # only a label >= n lands past the matrix (a negative one raises in bincount)
        raise ValueError(f"a label is {int(y.max())} but the data has {n} classes (labels 0..{n - 1})")
    counts[:n * n] += pairs.double()
    if n >= TOP_K:
        counts[n * n] += (logits.topk(TOP_K, dim=1).indices == y[:, None]).any(1).sum().double()
    counts[n * n + 1] += F.cross_entropy(logits.float(), y, reduction="sum").double()


def _metrics(counts: torch.Tensor, n: int, classes: Sequence[str] | None, confusion: bool) -> dict[str, Any]:
    matrix = counts[:n * n].view(n, n).long()
    images = int(matrix.sum())
    per_class = matrix.sum(1)
    result: dict[str, Any] = {
        "accuracy": float(matrix.diagonal().sum()) / max(1, images),
        "top5_accuracy": float(counts[n * n]) / max(1, images) if n >= TOP_K else None,
        "per_class_accuracy": [float(matrix[i, i]) / int(per_class[i]) if per_class[i] else None for i in range(n)],
        "loss": float(counts[n * n + 1]) / max(1, images),
        "images": images,
        "classes": list(classes) if classes else [str(i) for i in range(n)],
    }
    if confusion:
        result["confusion"] = matrix.tolist()
    return result
