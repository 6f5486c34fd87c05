"""``cnnlab eval``: top-1, top-5 and per-class accuracy; the confusion matrix up to 10 classes or on request
(--confusion); a --test-file whose image shape or class count differs from the run's is refused in one line."""

from __future__ import annotations

import json
import string

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.train import TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")


def _npz(path, n: int, classes: int | None, size: int = 8, seed: int = 0, labels: int | None = None) -> str:
    rng = np.random.default_rng(seed)
    extra = {} if classes is None else {"classes": np.array(list(string.ascii_lowercase[:classes]))}
    y = rng.integers(0, classes, n) if labels is None else np.arange(n) % labels  # labels: 0..labels-1 in turn
    np.savez(path, x=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), y=y, **extra)
    return str(path)


def _run(folder, classes: int) -> str:
    cfg = TrainConfig(model="resnet20", data="npz", train_file=_npz(folder / "train.npz", 32, classes),
                      test_file=_npz(folder / "test.npz", 24, classes, seed=1), max_steps=2, batch_size=16,
                      precision="fp32", seed=0)
    Trainer(cfg, folder / "run", progress=False).fit()
    return str(folder / "run")


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("six"), 6)


@pytest.fixture(scope="module")
def twelve(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("twelve"), 12)


def _eval(capsys, *argv: str) -> str:
    assert main(["eval", *argv]) == 0
    return capsys.readouterr().out


def test_top1_top5_per_class_and_the_confusion_matrix_of_a_few_classes(six, capsys):
    result = json.loads(_eval(capsys, six, "--json"))
    assert result["images"] == 24 and result["top5_accuracy"] is not None
    for i, row in enumerate(result["confusion"]):  # per-class accuracy is the row's diagonal share
        assert result["per_class_accuracy"][i] == (row[i] / sum(row) if sum(row) else None)
    text = _eval(capsys, six)
    first = text.splitlines()[0]
    assert f"test accuracy {result['accuracy']:.4f} (top-1), top-5 {result['top5_accuracy']:.4f}" in first
    assert "accuracy per class" in text and "confusion matrix (rows: true class" in text
    lines = text.splitlines()
    start = lines.index("accuracy per class") + 2
    assert [line.split()[0] for line in lines[start:start + 6]] == list("abcdef")


def test_the_confusion_matrix_of_many_classes_only_on_request(twelve, capsys):
    text = _eval(capsys, twelve)
    assert "top-5" in text and "confusion matrix (rows" not in text and "12 classes: --confusion prints" in text
    assert "confusion matrix (rows: true class" in _eval(capsys, twelve, "--confusion")
    assert len(json.loads(_eval(capsys, twelve, "--json"))["confusion"]) == 12


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: _npz(p, 8, 6, size=6), "holds 3x6x6 images (CxHxW) but the run was trained on 3x8x8"),
    (lambda p: _npz(p, 8, 7), "names 7 classes (a, b, c, d, e, f, ... (7 in all)) but the run was trained on 6"),
    (lambda p: _npz(p, 8, None, labels=8), "label 6 at row 6 is outside 0..5 (the run has 6 classes)"),
])
def test_a_test_file_unlike_the_run_is_refused_in_one_line(six, tmp_path, capsys, make, message):
    other = make(tmp_path / "other.npz")
    assert main(["eval", six, "--test-file", other]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"cnnlab eval: error: {other}") and message in err, err
