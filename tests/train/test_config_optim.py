"""TrainConfig overrides and files (type-checked, unknown keys rejected); schedules against their formulas."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from cnnlab.train import TrainConfig, build_optimizer, from_dict, load_config_file, lr_at, parse_override


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
