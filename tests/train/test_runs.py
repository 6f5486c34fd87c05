"""cnnlab.load_run: a run's network for inference (eval mode, its normalisation, the EMA average when kept, the zoo
model's own state dict), under the same trust rules as evaluate_run; evaluate_run refuses mismatched test sets."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

import cnnlab
from cnnlab.data import ArrayDataset, BatchLoader, normalize
from cnnlab.models import UntrustedCodeError
from cnnlab.train import RunInfo, TrainConfig, Trainer, evaluate, evaluate_run, load_checkpoint, load_run
from cnnlab.train.trainer import weights_digest

pytestmark = pytest.mark.usefixtures("one_thread")

USER_NET = '''
from pathlib import Path
from torch import nn

Path(__file__).with_name("IMPORTED").write_text("yes")


def net(num_classes=4):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, num_classes))
'''


def _data(n: int = 32, classes: tuple[str, ...] = ("a", "b", "c", "d"), size: int = 8, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    return ArrayDataset(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), rng.integers(0, len(classes), n),
                        classes)


def _train(out, **config) -> Trainer:
    cfg = TrainConfig(**{"model": "resnet20", "data": "npz", "max_steps": 2, "batch_size": 16, "precision": "fp32",
                         "seed": 0, **config})
    t = Trainer(cfg, out, train_data=_data(), test_data=_data(16, seed=1), progress=False)
    t.fit()
    return t


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ema"
    return out, _train(out, ema_decay=0.5, model_options={"zero_init_residual": True})


def test_load_run_gives_the_evaluated_network_ready_for_inference(ema_run):
    run, t = ema_run
    model = cnnlab.load_run(run)
    assert not model.training and not any(m.training for m in model.modules())
    info = model.run_info
    assert isinstance(info, RunInfo) and info.ema and info.model == "resnet20"
    assert info.model_options == {"zero_init_residual": True}
    assert info.mean == pytest.approx(t.mean) and info.std == pytest.approx(t.std) and info.image_shape == (3, 8, 8)
    assert info.classes == ("a", "b", "c", "d") and info.num_classes == 4 and info.checkpoint.endswith(
        "best.safetensors")
    assert weights_digest(model) == weights_digest(t.ema.module)  # the average, which the run evaluated
    # plain load_state_dict into the zoo model the run names
    zoo = cnnlab.create_model(info.model, num_classes=info.num_classes, **info.model_options)
    zoo.load_state_dict(model.state_dict())
    # normalisation: uint8 NCHW and [0, 1] floats give what the training loader fed the network
    images = torch.from_numpy(_data(5, seed=2).x)  # N, H, W, C uint8
    expected = normalize(images, t.mean, t.std, channels_last=False)
    nchw = images.permute(0, 3, 1, 2)
    torch.testing.assert_close(info.normalize(nchw), expected)
    torch.testing.assert_close(info.normalize(nchw.float() / 255), expected)
    torch.testing.assert_close(info.normalize(nchw[0]), expected[0])
    with torch.no_grad():
        torch.testing.assert_close(model(info.normalize(nchw)), t.ema.module.eval()(expected))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\) with C = 3"):
        info.normalize(images)  # NHWC is not taken for NCHW


def test_which_checkpoint(ema_run, tmp_path):
    run, _ = ema_run
    assert load_run(run, "last").run_info.checkpoint.endswith("last.safetensors")
    with pytest.raises(ValueError, match="which must be 'best' or 'last'"):
        load_run(run, "final")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        load_run(tmp_path)


def test_without_ema_the_trained_weights(tmp_path):
    t = _train(tmp_path / "plain")
    model = load_run(tmp_path / "plain", "last", device="cpu")
    assert not model.run_info.ema and weights_digest(model) == weights_digest(t.model)


def test_user_code_runs_only_when_trusted(tmp_path, monkeypatch):
    (tmp_path / "usernet_runs.py").write_text(USER_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    _train(tmp_path / "r", model="usernet_runs:net")
    (tmp_path / "IMPORTED").unlink()
    monkeypatch.delitem(__import__("sys").modules, "usernet_runs")
    with pytest.raises(UntrustedCodeError, match="--trust-run-code"):
        load_run(tmp_path / "r")
    assert not (tmp_path / "IMPORTED").exists()  # refused before importing anything
    assert load_run(tmp_path / "r", trust_code=True).run_info.model == "usernet_runs:net"
    assert load_run(tmp_path / "r", model="usernet_runs:net").run_info.num_classes == 4


def test_a_diverged_checkpoint_is_refused(ema_run, tmp_path):
    run, _ = ema_run
    (tmp_path / "d" / "checkpoints").mkdir(parents=True)
    tensors, meta = load_checkpoint(run / "checkpoints" / "last.safetensors")
    key = next(k for k in tensors if k.startswith("model/") and k.endswith(".weight"))
    tensors[key] = tensors[key] * float("nan")
    (tmp_path / "d" / "checkpoints" / "last.safetensors").write_bytes(
        st_save(tensors, metadata={"cnnlab": json.dumps(meta)}))
    with pytest.raises(ValueError, match=f"holds NaN or infinity in {key[len('model/'):]}: the run diverged"):
        load_run(tmp_path / "d")


@pytest.mark.parametrize(("data", "message"), [
    (_data(8, size=6), "holds 3x6x6 images (CxHxW) but the run was trained on 3x8x8"),
    (_data(8, classes=("a", "b", "c", "d", "e")), "names 5 classes (a, b, c, d, e) but the run was trained on 4;"),
    (_data(8, classes=("a", "b", "c", "x")), "names classes (a, b, c, x) but the run was trained on (a, b, c, d)"),
])
def test_evaluate_run_refuses_a_test_set_unlike_the_run(ema_run, data, message):
    run, _ = ema_run
    with pytest.raises(ValueError, match="^the given test set " + re.escape(message)):
        evaluate_run(run, test_data=data)


def test_evaluate_run_with_another_test_time_augmentation(ema_run):
    run, _ = ema_run
    test = _data(16, seed=1)
    model = load_run(run)
    loader = BatchLoader(test, 500, model.run_info.mean, model.run_info.std, train=False)
    for tta in (None, "flip", "flip_translate"):
        expected = evaluate(model, loader, num_classes=4, tta=tta)["loss"]
        assert evaluate_run(run, test_data=test, tta=tta)["loss"] == pytest.approx(expected, abs=1e-6)
    without = evaluate_run(run, test_data=test, tta=None)["loss"]
    assert evaluate_run(run, test_data=test)["loss"] == pytest.approx(without)
    assert evaluate_run(run, test_data=test, tta="flip")["loss"] != evaluate_run(run, test_data=test)["loss"]
    with pytest.raises(ValueError, match="tta must be 'run'"):
        evaluate_run(run, test_data=test, tta="mirror")
