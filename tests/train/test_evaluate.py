"""cnnlab.train.evaluate: top-1 / top-5 / per-class accuracy, loss and confusion matrix against closed forms; shards
summed across processes give the whole set's numbers; the Trainer and evaluate_run both use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ArrayDataset, BatchLoader, channel_stats
from cnnlab.train import TrainConfig, Trainer, evaluate, evaluate_run

pytestmark = pytest.mark.usefixtures("one_thread")


class Given(nn.Module):
    """Returns its input as the logits: an image of shape (C, 1, 1) *is* the logits, so every prediction is known."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return x.flatten(1) * self.scale


# 6 classes, 7 images: the true class's rank among the logits is 1, 5, 6, 1, 6, 3, 1
LOGITS = torch.tensor([[9., 1, 2, 3, 4, 5],   # true 0: rank 1
                       [1., 2, 9, 3, 4, 5],   # true 1: rank 5
                       [9., 8, 1, 7, 6, 5],   # true 2: rank 6
                       [1., 2, 3, 9, 4, 5],   # true 3: rank 1
                       [5., 6, 7, 8, 9, 1],   # true 5: rank 6
                       [1., 2, 3, 9, 8, 7],   # true 5: rank 3
                       [1., 2, 3, 4, 5, 9]])  # true 5: rank 1
LABELS = torch.tensor([0, 1, 2, 3, 5, 5, 5])


def _same(a: dict, b: dict) -> bool:
    """Equal results, floats up to rounding (sums taken in another order)."""
    return a.keys() == b.keys() and all(a[k] == (pytest.approx(b[k]) if isinstance(b[k], float) else b[k]) for k in a)


def _batches(logits=LOGITS, labels=LABELS, size=3):
    x = logits[:, :, None, None]
    return [(x[i:i + size], labels[i:i + size]) for i in range(0, len(labels), size)]


def test_metrics_against_closed_forms():
    result = evaluate(Given(), _batches(), classes=tuple("abcdef"))
    assert result["images"] == 7
    assert result["accuracy"] == pytest.approx(3 / 7)  # ranks 1 at rows 0, 3, 6
    assert result["top5_accuracy"] == pytest.approx(5 / 7)  # all but the rank-6 rows 2 and 4
    # class 4 has no test image: None, not 0 or NaN; class 5: one of its three rows is right
    assert result["per_class_accuracy"] == [1.0, 0.0, 0.0, 1.0, None, pytest.approx(1 / 3)]
    assert result["loss"] == pytest.approx(F.cross_entropy(LOGITS, LABELS).item(), rel=1e-6)
    expected = np.zeros((6, 6), int)
    np.add.at(expected, (LABELS.numpy(), LOGITS.argmax(1).numpy()), 1)
    assert result["confusion"] == expected.tolist() and result["classes"] == list("abcdef")
    assert "confusion" not in evaluate(Given(), _batches(), confusion=False)


def test_top5_needs_five_classes_and_class_count_defaults_to_the_output_width():
    four = evaluate(Given(), _batches(LOGITS[:, :4], torch.tensor([0, 1, 2, 3, 0, 1, 2])))
    assert four["top5_accuracy"] is None and four["classes"] == ["0", "1", "2", "3"]
    assert len(four["confusion"]) == 4


def test_bad_class_counts_and_labels_are_refused():
    with pytest.raises(ValueError, match=r"outputs of shape \(3, 6\) but the data has 10 classes"):
        evaluate(Given(), _batches(), num_classes=10)
    with pytest.raises(ValueError, match="a label is 6 but the data has 6 classes"):
        evaluate(Given(), _batches(labels=torch.tensor([0, 1, 2, 3, 5, 5, 6])))
    with pytest.raises(ValueError, match="2 class names for 6 classes"):
        evaluate(Given(), _batches(), num_classes=6, classes=("a", "b"))
    with pytest.raises(ValueError, match="no batches and no num_classes"):
        evaluate(Given(), [])


def test_shards_summed_across_processes_give_the_whole_set():
    whole = evaluate(Given(), _batches())
    counts = {}
    evaluate(Given(), _batches(LOGITS[4:], LABELS[4:]), num_classes=6, reduce=lambda t: counts.setdefault("b", t))
    # rank 0's shard plus what the all-reduce brings from rank 1
    first = evaluate(Given(), _batches(LOGITS[:4], LABELS[:4]), num_classes=6, reduce=lambda t: t.add_(counts["b"]))
    assert _same(first, whole)
    # a rank whose shard is empty still takes part in the sum
    empty = evaluate(Given(), [], num_classes=6, reduce=lambda t: t.add_(counts["b"]))
    assert empty["images"] == 3


def test_runs_in_eval_mode_and_restores_the_mode():
    net = Given()
    evaluate(net, _batches())
    assert set(net.modes) == {False} and net.training
    net.eval()
    evaluate(net, _batches())
    assert not net.training


def test_tta_views_and_array_datasets():
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8), rng.integers(0, 5, 10),
                        tuple("vwxyz"))
    mean, std = channel_stats(data.x)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten(), nn.LazyLinear(5))
    loader = BatchLoader(data, 4, mean, std, train=False, channels_last=False)
    with torch.no_grad():
        x = torch.cat([x for x, _ in loader])
        logits = (net(x) + net(x.flip(-1))) / 2
    flip = evaluate(net, loader, tta="flip", classes=data.classes)
    assert flip["loss"] == pytest.approx(F.cross_entropy(logits, torch.from_numpy(data.y)).item(), rel=1e-5)
    assert _same(evaluate(net, data, mean=mean, std=std, tta="flip"), flip)
    assert evaluate(net, loader)["classes"] == ["0", "1", "2", "3", "4"]  # batches alone name no classes
    with pytest.raises(ValueError, match="needs the training mean and std"):
        evaluate(net, data)


class Tiny(nn.Module):
    def __init__(self, num_classes: int = 6) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def test_the_trainer_and_evaluate_run_report_the_same_numbers(tmp_path):
    rng = np.random.default_rng(1)
    data = ArrayDataset(rng.integers(0, 256, (24, 6, 6, 3), dtype=np.uint8), rng.integers(0, 6, 24),
                        tuple(f"c{i}" for i in range(6)))
    cfg = TrainConfig(model="tiny", data="npz", epochs=1, batch_size=8, precision="fp32", seed=0)
    t = Trainer(cfg, tmp_path / "r", model=Tiny(), train_data=data, test_data=data, progress=False)
    summary = t.fit()
    during = t.evaluate()
    assert during["accuracy"] == summary["final_test_acc"] and during["top5_accuracy"] is not None
    assert _same(during, evaluate(t.model, t.test_loader, classes=t.classes))
    assert t.model.training  # the Trainer trains on after evaluating
    after = evaluate_run(tmp_path / "r", "last", test_data=data, model=Tiny())
    assert _same({k: after[k] for k in during}, during)
