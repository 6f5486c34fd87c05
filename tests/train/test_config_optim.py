"""TrainConfig overrides and files (type-checked, unknown keys rejected); schedules against their formulas."""

from __future__ import annotations

import json
import logging
import math
import re

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.train import TrainConfig, build_optimizer, from_dict, load_config_file, lr_at, parse_override
from cnnlab.train.optim import describe_schedule, milestone_steps, milestone_warning


def test_overrides_are_typed():
    assert parse_override("lr=0.05") == ("lr", 0.05)
    assert parse_override("lr=1") == ("lr", 1.0) and isinstance(parse_override("lr=1")[1], float)
    assert parse_override("schedule=cosine") == ("schedule", "cosine")
    assert parse_override("milestones=[10, 20]") == ("milestones", (10, 20))
    assert parse_override("max_steps=none") == ("max_steps", None)
    assert parse_override("nesterov=true") == ("nesterov", True)
    assert parse_override("sync_bn=true") == ("sync_bn", True)
    assert parse_override("data_dir=123") == ("data_dir", "123")
    assert parse_override("model_options={'dropout': 0.2}") == ("model_options", {"dropout": 0.2})
    # none / null is None only where the key's type allows None; elsewhere it is the text
    assert parse_override("tta=null") == ("tta", None) and parse_override("grad_clip=None") == ("grad_clip", None)
    assert parse_override("data_dir=none") == ("data_dir", "none")
    assert parse_override("model=null") == ("model", "null")


def test_bad_overrides():
    with pytest.raises(KeyError, match="unknown config key 'lrr'.*did you mean 'lr'"):
        parse_override("lrr=0.1")
    with pytest.raises(TypeError, match="'epochs' expects int, got 'many'"):
        parse_override("epochs=many")
    with pytest.raises(TypeError, match="'epochs' expects int, got 1.5"):
        parse_override("epochs=1.5")
    with pytest.raises(TypeError, match="'nesterov' expects bool"):
        parse_override("nesterov=3")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("lr")
    with pytest.raises(TypeError, match="'epochs' expects int, got 'none'"):
        parse_override("epochs=none")  # not None: epochs has no null
    with pytest.raises(ValueError, match="optimizer='adam'"):
        from_dict({"optimizer": "adam"})


def test_config_files(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 0.2\nmilestones: [5, 7]\nschedule: step\n")
    cfg = from_dict(load_config_file(tmp_path / "c.yaml"))
    assert cfg.lr == 0.2 and cfg.milestones == (5, 7)
    (tmp_path / "c.json").write_text(json.dumps({"batch_size": "big"}))
    with pytest.raises(TypeError, match="batch_size"):
        from_dict(load_config_file(tmp_path / "c.json"))
    (tmp_path / "u.json").write_text(json.dumps({"learning_rate": 0.1}))
    with pytest.raises(KeyError, match="learning_rate"):
        from_dict(load_config_file(tmp_path / "u.json"))
    (tmp_path / "broken.yaml").write_text("lr: [0.1\n")
    with pytest.raises(ValueError, match="cannot be parsed"):
        load_config_file(tmp_path / "broken.yaml")
    assert from_dict(TrainConfig().to_dict()) == TrainConfig()  # JSON round trip


def test_resnet_step_schedule_with_warmup():
    cfg = TrainConfig(warmup_steps=400)  # ResNet-110 recipe
    values = {s: lr_at(cfg, s, 64000) for s in (0, 399, 400, 31999, 32000, 47999, 48000, 63999)}
    assert values[0] == values[399] == 0.01
    assert values[400] == values[31999] == 0.1
    assert values[32000] == pytest.approx(0.01) and values[47999] == pytest.approx(0.01)
    assert values[48000] == pytest.approx(0.001) and values[63999] == pytest.approx(0.001)


def test_cosine_onecycle_exponential():
    cos = TrainConfig(schedule="cosine", lr=0.4)
    assert lr_at(cos, 0, 100) == pytest.approx(0.4) and lr_at(cos, 50, 100) == pytest.approx(0.2)
    assert lr_at(cos, 100, 100) == pytest.approx(0.0, abs=1e-12)
    one = TrainConfig(schedule="onecycle", lr=1.0, onecycle_pct=0.25)
    assert lr_at(one, 0, 100) == pytest.approx(1 / 25) and lr_at(one, 25, 100) == pytest.approx(1.0)
    assert lr_at(one, 100, 100) == pytest.approx(1e-4)
    assert max(lr_at(one, s, 100) for s in range(100)) == pytest.approx(1.0)
    exp = TrainConfig(schedule="exponential", lr=0.045, gamma=0.94, decay_every=10)  # Inception-v3 style
    assert lr_at(exp, 25, 100) == pytest.approx(0.045 * 0.94 ** 2)
    assert math.isclose(lr_at(TrainConfig(schedule="constant", lr=0.3), 77, 100), 0.3)


def test_optimizers():
    model = nn.Linear(3, 2)
    sgd = build_optimizer(model, TrainConfig(nesterov=True))
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["weight_decay"] == 1e-4
    rms = build_optimizer(model, TrainConfig(optimizer="rmsprop", lr=0.045))
    assert isinstance(rms, torch.optim.RMSprop) and rms.defaults["alpha"] == 0.9 and rms.defaults["eps"] == 1.0


# ---------------------------------------------------------------- milestones: fractions of the run, or steps
@pytest.mark.parametrize("epochs", [1, 6, 30, 164, 200])
def test_the_default_schedule_decays_at_half_and_three_quarters_of_any_run(epochs):
    total = epochs * 390  # CIFAR-10 at batch 128
    cfg = TrainConfig(epochs=epochs)
    first, second = math.floor(0.5 * total), math.floor(0.75 * total)
    assert milestone_steps(cfg.milestones, total) == (first, second)
    assert lr_at(cfg, first - 1, total) == 0.1 and lr_at(cfg, first, total) == pytest.approx(0.01)
    assert lr_at(cfg, second - 1, total) == pytest.approx(0.01) and lr_at(cfg, total - 1, total) == pytest.approx(0.001)
    assert milestone_warning(cfg, total) is None


def test_fractions_give_the_papers_steps():
    assert milestone_steps((0.5, 0.75), 64_000) == (32_000, 48_000)  # He et al. 2016: 32k and 48k of 64k
    assert milestone_steps((0.5, 0.75), 2) == (1, 1)  # never step 0: the first step runs at the base lr
    # the experiments' compressed paper schedule records the steps the fractions resolve to in its run, as
    # before fractions existed (docs/results: 6 epochs of 15,000 images at batch 128 = 702 steps: 351, 526)
    from cnnlab.experiments import degradation
    from cnnlab.experiments.budgets import paper_schedule

    assert paper_schedule(15_000, 6, 128)["milestones"] == (351, 526)
    steps = degradation.QUICK_EPOCHS * (degradation.QUICK_IMAGES // 128)
    assert degradation.EXPERIMENT.budgets["quick"].train["milestones"] == milestone_steps((0.5, 0.75), steps)


def test_integer_milestones_keep_their_meaning_and_warn_past_the_run():
    old = from_dict({"milestones": [32000, 48000], "epochs": 30})  # an older config.json: absolute steps
    assert old.milestones == (32000, 48000) and all(isinstance(m, int) for m in old.milestones)
    assert lr_at(old, 31999, 11_700) == 0.1 and lr_at(old, 32000, 11_700) == pytest.approx(0.01)
    assert milestone_steps(old.milestones, 11_700) == (32000, 48000)
    warning = milestone_warning(old, 11_700)
    assert "milestones 32000, 48000 (optimiser steps) lie at or past this run's last step (11700)" in warning
    assert "never drops" in warning and "milestones=[0.5,0.75]" in warning and "\n" not in warning
    assert "drops at only 1 of its 2 milestones" in milestone_warning(old, 40_000)
    assert milestone_warning(old, 64_000) is None and milestone_warning(old.replace(schedule="cosine"), 100) is None


def test_milestones_are_all_fractions_or_all_steps():
    assert parse_override("milestones=[0.5,0.75]") == ("milestones", (0.5, 0.75))
    assert from_dict(TrainConfig(milestones=(0.3,)).to_dict()).milestones == (0.3,)  # the JSON round trip
    for bad, fragment in (([0.5, 48000], "mixes fractions of the run and step numbers"),
                          ([1.5], "1.5 is neither a fraction of the run in (0, 1) nor an integer step"),
                          ([1.0], "1.0 is neither"), ([-1], "must be steps >= 0")):
        with pytest.raises(ValueError, match=re.escape(fragment)):
            TrainConfig(milestones=bad)


def test_the_schedule_says_what_it_does():
    assert describe_schedule(TrainConfig(epochs=30), 11_700) == (
        "step: lr 0.1, x0.1 at steps 5850, 8775 (50%, 75% of 11700)")
    assert describe_schedule(TrainConfig(milestones=(32000, 48000), warmup_steps=400), 64_000) == (
        "step: lr 0.01 for 400 steps, then lr 0.1, x0.1 at steps 32000, 48000 (50%, 75% of 64000)")
    assert describe_schedule(TrainConfig(schedule="cosine", lr=0.4), 100) == "cosine: lr 0.4 down to 0 over 100 steps"
    assert describe_schedule(TrainConfig(schedule="onecycle", lr=1.0), 100) == (
        "onecycle: lr 0.04 up to 1 over 25% of the run, then down to 0.0001")


def test_a_fraction_schedule_keeps_its_length_on_resume_unless_restretched(tmp_path, caplog):
    from cnnlab.data import ArrayDataset
    from cnnlab.train import Trainer

    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, 32), ("a", "b"))

    def fit(cfg, out, **kw):
        model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        Trainer(cfg, out, model=model, train_data=data, test_data=data, progress=False, **kw).fit()
        lines = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        return {r["step"]: r["lr"] for r in lines if r["kind"] == "step"}

    cfg = TrainConfig(model="x", data="npz", batch_size=16, precision="fp32", epochs=10, max_steps=4,
                      milestones=(0.75,))
    first = fit(cfg, tmp_path / "kept")  # metrics.jsonl's step n ran at the lr of step index n - 1
    assert first[3] == 0.1 and first[4] == pytest.approx(0.01)  # 0.75 of 4 steps: from index 3
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        lrs = fit(cfg.replace(max_steps=8), tmp_path / "kept", resume=True)
    assert "step schedule keeps the 4 steps it started with" in caplog.text
    assert [lrs[s] for s in (5, 8)] == [pytest.approx(0.01)] * 2
    fit(cfg, tmp_path / "stretched")
    lrs = fit(cfg.replace(max_steps=8), tmp_path / "stretched", resume=True, restretch_schedule=True)
    assert [lrs[s] for s in (5, 6)] == [0.1] * 2 and lrs[7] == pytest.approx(0.01)  # 0.75 of 8: from index 6


def test_a_run_without_a_step_schedule_resumes_under_the_new_default_milestones(tmp_path):
    from cnnlab.data import ArrayDataset
    from cnnlab.train import Trainer

    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (32, 8, 8, 3), dtype=np.uint8), rng.integers(0, 2, 32), ("a", "b"))
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    # as an experiment's one-cycle run recorded before milestones became fractions: the old default steps
    old = TrainConfig(model="x", data="npz", batch_size=16, precision="fp32", epochs=2, schedule="onecycle",
                      milestones=(32000, 48000))
    Trainer(old, tmp_path / "r", model=model, train_data=data, test_data=data, progress=False).fit(until_step=2)
    resumed = Trainer(old.replace(milestones=(0.5, 0.75)), tmp_path / "r", resume=True, model=model,
                      train_data=data, test_data=data, progress=False)
    assert resumed.config.milestones == (32000, 48000) and resumed.fit()["finished"]
