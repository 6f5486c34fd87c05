"""benchmarks/bench_time_to_accuracy.py --smoke: the plumbing of the time-to-accuracy benchmark on tiny files
(load, train, evaluate, the JPEG-75 evaluation, the row appended to the table, the exit status)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench(load_script):
    return load_script("bench_time_to_accuracy")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    paths = {}
    for name, n in (("train", 128), ("test", 40), ("jpeg", 30)):
        x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
        np.savez(tmp_path / f"{name}.npz", x=x, y=rng.integers(0, 10, n), classes=np.array([str(i) for i in range(10)]))
        paths[name] = str(tmp_path / f"{name}.npz")
    return paths


def _argv(files, tmp_path, *extra):
    return ["--smoke", "--train-file", files["train"], "--test-file", files["test"], "--extra-test-file",
            files["jpeg"], "--benchmarks-file", str(tmp_path / "B.md"), "--runs-dir", str(tmp_path / "runs"),
            "--set", "precision=fp32", *extra]


def test_smoke_run_appends_a_row_and_gates_on_the_target(bench, files, tmp_path):
    assert bench.main(_argv(files, tmp_path, "--target", "0.0")) == 0
    text = (tmp_path / "B.md").read_text()
    assert text.count("## Time to accuracy") == 1 and "| date | CPU | native bf16 |" in text
    rows = [line for line in text.splitlines() if line.startswith("| 20")]
    assert len(rows) == 1 and "| met |" in rows[0] and "cifar10-94" in rows[0] and "(3) |" in rows[0]
    assert len(list((tmp_path / "runs").iterdir())) == 1  # one run directory per seed
    # a failed attempt is a row too, with its error, and exit status 1
    assert bench.main(_argv(files, tmp_path, "--target", "0.0", "--train-file", str(tmp_path / "nope.npz"))) == 1
    rows = [line for line in (tmp_path / "B.md").read_text().splitlines() if line.startswith("| 20")]
    assert len(rows) == 2 and "FAILED: seed 0: FileNotFoundError" in rows[1]
    # --first-seed continues an attempt's seeds in a row of its own
    assert bench.main(_argv(files, tmp_path, "--target", "0.0", "--first-seed", "4")) == 0
    rows = [line for line in (tmp_path / "B.md").read_text().splitlines() if line.startswith("| 20")]
    assert len(rows) == 3 and "| 4 |" in rows[2]
    assert any(p.name.endswith("seed4") for p in (tmp_path / "runs").iterdir())


def test_missed_target_and_time_limit(bench):
    args = type("Args", (), {"seeds": 2, "target": 0.94, "recipe": "cifar10-94", "set": [], "smoke": False})()
    env = {"cpu": "x", "native_bf16": True, "load_min": 1.0, "load_max": 2.0, "macs": 118_147_360,
           "peak": 1e12, "peak_dtype": "bfloat16"}
    runs = [{"seed": s, "wall_s": w, "acc": a, "steps": 480, "batch_size": 1024, "epochs": 10,
             "images_per_s": 500.0, "extra_acc": 0.85} for s, w, a in ((0, 1000, 0.941), (1, 1100, 0.943))]
    row, met = bench.summarize(args, runs, [], env, 1200.0)
    assert met and "94.20 ± 0.14% (94.10-94.30)" in row and "| 1050 ± 71 |" in row
    assert "35.4% (1000 GFLOP/s bfloat16)" in row  # 500 img/s x 6 x 118.1 M MACs / 1 TFLOP/s
    assert f"| {6 * 118_147_360 * 480 * 1024 / 1e15:.3f} |" in row  # training FLOPs per run
    assert not bench.summarize(args, runs, [], env, 1000.0)[1]  # over the time limit
    args.target = 0.95
    assert not bench.summarize(args, runs, [], env, None)[1]  # below the accuracy target
