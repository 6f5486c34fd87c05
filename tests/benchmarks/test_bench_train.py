"""benchmarks/bench_train.py: the recipe's step against its network in a plain loop (the table, and a tiny run)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def bench(load_script):
    return load_script("bench_train")


def test_recipe_table(bench):
    q = {"recipe": "cifar10-94", "model": "fastcifar_vgg", "batch": 1024, "steps": 2, "autocast": "bfloat16",
         "channels_last": True, "rates": {"plain": [200.0, 220.0], "plain_recipe_precision": [400.0, 440.0],
                                          "recipe": [380.0, 418.0]},
         "ratios": {"plain": 1.0, "plain_recipe_precision": 2.0, "recipe": 1.9}}
    text = "\n".join(bench.recipe_markdown(q, rounds=2))
    assert "| plain fp32 PyTorch loop (NCHW, one batch already in memory, no augmentation) | 210 | 1.00x | 200, 220 |" \
        in text
    assert "| plain loop in the recipe's precision and layout (autocast bfloat16, channels_last) | 420 | 2.00x |" \
        in text
    assert "`Trainer` with `--recipe cifar10-94`" in text and "| 399 | 1.90x | 380, 418 |" in text
    assert "runs at 0.95x the plain loop in the same precision and layout" in text
    # where the recipe trains in fp32 NCHW the middle row would repeat the first: it is left out
    del q["rates"]["plain_recipe_precision"]
    text = "\n".join(bench.recipe_markdown(q, rounds=2))
    assert "recipe's precision and layout" not in text and "| 399 | 1.90x |" in text


@pytest.mark.slow
def test_recipe_run_tiny(bench):
    q = bench.recipe_run("cifar10-94", rounds=2, steps=1, batch_size=16, precision="fp32")
    assert set(q["rates"]) == {"plain", "plain_recipe_precision", "recipe"}  # channels_last differs from plain
    assert all(len(v) == 2 and min(v) > 0 for v in q["rates"].values()) and q["ratios"]["plain"] == 1.0
    assert q["autocast"] == "fp32" and q["batch"] == 16
