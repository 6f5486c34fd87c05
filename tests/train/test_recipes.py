"""Recipes as data: each builds a valid TrainConfig; cifar10-94 carries airbench94's settings in cnnlab's units and
trains a few steps on a tiny subset; ``cnnlab train --recipe`` / ``--list-recipes``, and flags override a recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.data import ArrayDataset
from cnnlab.models import list_models
from cnnlab.train import Trainer
from cnnlab.train.recipes import RECIPES, describe_recipes, get_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_is_a_valid_config(name):
    recipe = get_recipe(name)
    assert recipe.description and "\n" not in recipe.description and recipe.source
    assert recipe.config().model in list_models()
    assert name in describe_recipes()


def test_cifar10_94_is_airbench94_in_cnnlab_units():
    cfg = get_recipe("cifar10-94").config()
    # airbench: lr 11.5 and weight decay 0.0153 per 1024 examples of a summed loss, divided by the Nesterov
    # step gain 1 + 1 / (1 - 0.85); for a mean loss over a 1024 batch the lr is that times 1024
    gain = 1 + 1 / (1 - 0.85)
    assert cfg.lr == pytest.approx(11.5 / gain) == pytest.approx(1.5)
    assert cfg.lr * cfg.weight_decay == pytest.approx(0.0153 / gain)  # the decay per step
    assert cfg.lr * cfg.norm_lr_scale * cfg.norm_weight_decay == pytest.approx(0.0153 / gain)  # BN biases: same
    assert (cfg.batch_size, cfg.momentum, cfg.nesterov, cfg.label_smoothing) == (1024, 0.85, True, 0.2)
    assert (cfg.ema_decay, cfg.ema_every, cfg.ema_warmup_power) == (pytest.approx(0.95 ** 5), 5, 3.0)
    assert cfg.model == "fastcifar_vgg" and cfg.tta == "flip_translate" and cfg.whiten_bias_epochs == 3
    with pytest.raises(ValueError, match="did you mean 'cifar10-94'"):
        get_recipe("cifar10_94")


def _tiny(n: int, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    return ArrayDataset(x, y, tuple(str(i) for i in range(10)))


def test_cifar10_94_trains_a_few_steps_on_a_tiny_subset(tmp_path):
    cfg = get_recipe("cifar10-94").config(data="npz", batch_size=32, max_steps=3, precision="fp32",
                                          eval_batch_size=32, ema_every=1)
    t = Trainer(cfg, tmp_path / "r", train_data=_tiny(64), test_data=_tiny(32, 1), progress=False)
    assert {g["cnnlab_group"] for g in t.optimizer.param_groups} == {"main", "norm", "whiten_bias"}
    summary = t.fit()
    assert summary["finished"] and summary["step"] == 3 and summary["test_images"] == 32
    assert not t.model.whiten.conv.weight.requires_grad and t.ema is not None
    stored = json.loads((tmp_path / "r" / "config.json").read_text())["config"]
    assert stored["model"] == "fastcifar_vgg" and stored["batch_size"] == 32 and stored["lookahead"] is True


@pytest.fixture
def npz(tmp_path, monkeypatch):
    for name, n, seed in (("train", 64, 0), ("test", 16, 1)):
        data = _tiny(n, seed)
        np.savez(tmp_path / f"{name}.npz", x=data.x, y=data.y, classes=np.array(data.classes))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    return tmp_path


def test_cli_recipe_with_overrides(npz, capsys):
    argv = ["train", "--recipe", "cifar10-94", "--data", "npz", "--train-file", "train.npz", "--test-file",
            "test.npz", "--out", "run", "--batch-size", "32", "--max-steps", "2", "--set", "precision=fp32",
            "--set", "eval_batch_size=16", "--set", "lr=0.5"]
    assert main(argv) == 0, capsys.readouterr().err
    stored = json.loads((npz / "run" / "config.json").read_text())["config"]
    assert stored["model"] == "fastcifar_vgg" and stored["whiten_init"] is True  # from the recipe
    assert stored["batch_size"] == 32 and stored["lr"] == 0.5  # a flag and --set override it
    assert main(["train", "resnet20", "--recipe", "cifar10-94", "--data", "npz", "--train-file", "train.npz",
                 "--test-file", "test.npz", "--out", "run2", "--max-steps", "1", "--batch-size", "32",
                 "--set", "precision=fp32", "--set", "eval_batch_size=16", "--set", "tta=null",
                 "--set", "whiten_init=false", "--set", "whiten_bias_epochs=null"]) == 0, capsys.readouterr().err
    assert json.loads((npz / "run2" / "config.json").read_text())["config"]["model"] == "resnet20"  # MODEL too


def test_cli_list_and_bad_recipe(npz, capsys):
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in RECIPES) and "arXiv:2404.00498" in out
    assert main(["train", "--recipe", "cifar-94"]) == 2
    assert "unknown recipe 'cifar-94'" in capsys.readouterr().err
    assert main(["train", "--recipe", "cifar10-94", "--resume", "run"]) == 2
    assert "drop --recipe" in capsys.readouterr().err
