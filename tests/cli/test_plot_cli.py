"""cnnlab plot: runs overlaid from their metrics.jsonl, labelled axes, a legend of run names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.cli.plot import curves_figure

pytest.importorskip("matplotlib")


def _run(path: Path, accs: list[float], lr: float = 0.1) -> Path:
    """A run directory whose metrics.jsonl has the Trainer's layout: step records and epoch records."""
    path.mkdir(parents=True)
    lines = []
    for epoch, acc in enumerate(accs):
        for step in (2 * epoch + 1, 2 * epoch + 2):
            lines.append({"kind": "step", "step": step, "epoch": epoch, "loss": 2.0 / step, "acc": acc / 2,
                          "lr": lr / (epoch + 1), "images_per_s": 100.0})
        lines.append({"kind": "epoch", "step": 2 * epoch + 2, "epoch": epoch + 1, "train_loss": 1.0 / (epoch + 1),
                      "train_acc": acc - 0.05, "lr": lr / (epoch + 1), "images_per_s": 100.0,
                      "test_loss": 1.2 / (epoch + 1), "test_acc": acc, "test_top5": (1 + acc) / 2})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"kind": "ep')  # torn line
    return path


def test_overlays_runs_with_names_axes_and_legend(tmp_path):
    a, b = _run(tmp_path / "r20", [0.4, 0.6, 0.7]), _run(tmp_path / "plain20", [0.3, 0.5])
    fig = curves_figure([str(a), str(b)], "test_acc")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "test accuracy (%)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["r20 (best 70.00%)", "plain20 (best 50.00%)"]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3] and list(ax.lines[0].get_ydata()) == pytest.approx([40, 60, 70])
    steps = curves_figure([str(a)], "lr", per_step=True, log_y=True).axes[0]
    assert steps.get_xlabel() == "step" and steps.get_yscale() == "log" and len(steps.lines[0].get_xdata()) == 6


def test_plots_the_test_top5(tmp_path):
    ax = curves_figure([str(_run(tmp_path / "r20", [0.4, 0.6]))], "test_top5").axes[0]
    assert ax.get_ylabel() == "test top-5 accuracy (%)" and list(ax.lines[0].get_ydata()) == pytest.approx([70, 80])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["r20 (best 80.00%)"]


def test_same_names_get_their_paths(tmp_path):
    a, b = _run(tmp_path / "x" / "run", [0.5]), _run(tmp_path / "y" / "run", [0.6])
    labels = [t.get_text() for t in curves_figure([str(a), str(b)], "train_loss").axes[0].get_legend().get_texts()]
    assert labels == [f"{a} (last 1)", f"{b} (last 1)"]


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_cli_writes_the_image(tmp_path, capsys, suffix, magic):
    a, b = _run(tmp_path / "a", [0.4, 0.6]), _run(tmp_path / "b", [0.5, 0.55])
    out = tmp_path / f"curves{suffix}"
    assert main(["plot", str(a), str(b), "--metric", "train_loss", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(magic) and f"wrote {out}" in capsys.readouterr().err


def test_errors_are_one_line(tmp_path, capsys):
    a = _run(tmp_path / "a", [0.4])
    for argv, says in [(["plot", str(tmp_path / "nope")], "does not exist"),
                       (["plot", str(tmp_path)], "has no metrics.jsonl"),
                       (["plot", str(a), "--metric", "test_acc", "--per-step"], "--per-step has no test_acc"),
                       (["plot", str(a), "--out", str(tmp_path / "c.gif")], "give a .png, .svg or .pdf")]:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.jsonl").write_text('{"kind": "step", "step": 1, "loss": 2.0, "lr": 0.1}\n')
    assert main(["plot", str(tmp_path / "b")]) == 2
    assert "no test_acc in the epoch records of" in capsys.readouterr().err
    assert main(["plot", str(tmp_path / "b"), "--metric", "test_top5"]) == 2
    assert "top-5 needs 5 or more classes" in capsys.readouterr().err


TINY = '''
from torch import nn


def tiny(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, num_classes))
'''


def test_plots_what_the_trainer_writes(tmp_path, monkeypatch, one_thread):
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(0)
    for name, n in (("train", 32), ("test", 16)):
        np.savez(tmp_path / f"{name}.npz", x=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
                 y=rng.integers(0, 4, n))
    (tmp_path / "tinynet_plot.py").write_text(TINY)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "tinynet_plot:tiny", "--data", "npz", "--train-file", "train.npz", "--test-file",
                 "test.npz", "--out", "run", "--batch-size", "16", "--epochs", "2", "--quiet",
                 "--set", "precision=fp32"]) == 0
    ax = curves_figure(["run"], "test_acc").axes[0]
    assert list(ax.lines[0].get_xdata()) == [1, 2]
    assert len(curves_figure(["run"], "train_loss", per_step=True).axes[0].lines[0].get_xdata()) == 4
    assert main(["plot", "run", "--metric", "lr", "--out", "lr.svg"]) == 0 and (tmp_path / "lr.svg").exists()
