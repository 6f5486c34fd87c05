"""The Trainer's fast-training options (airbench, arXiv:2404.00498): each does what its config key says.

EMA weights differ from the raw weights and are what is evaluated and saved; TTA averages the views it names;
the whitening init is computed from the training data and whitens it; dirac init is the identity; parameter
groups get their lr / weight decay; onecycle_linear; a resumed run with all options on is bitwise exact.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import ArrayDataset, normalize
from cnnlab.train import TrainConfig, Trainer, evaluate_run, load_checkpoint, lr_at
from cnnlab.train.ema import ModelEMA
from cnnlab.train.techniques import param_groups, set_group_hyperparameters
from cnnlab.train.trainer import weights_digest
from cnnlab.train.tta import tta_logits
from cnnlab.train.whitening import init_dirac, patch_moments, whitening_filters

pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n: int = 48, size: int = 8, classes: int = 4, seed: int = 0) -> ArrayDataset:
    """Smooth images (neighbouring pixels correlate, as in photos) with a learnable class signal."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    noise = rng.normal(0, 1, (n, size + 2, size + 2, 3))
    smooth = sum(noise[:, i:i + size, j:j + size] for i in range(3) for j in range(3)) / 3  # 3x3 box blur
    x = 100 + 25 * smooth
    x[np.arange(n), :, :, y % 3] += 60
    return ArrayDataset(np.clip(x, 0, 255).astype(np.uint8), y, tuple(f"c{i}" for i in range(classes)))


class Whitened(nn.Module):
    """airbench's layout in miniature: a 2x2 conv of 2 x 12 filters, a 3x3 conv, BN, pooled linear head."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.whiten = nn.Conv2d(3, 24, 2)
        self.conv = nn.Conv2d(24, 32, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        h = self.bn(self.conv(F.gelu(self.whiten(x))))
        return self.fc(F.gelu(h).amax((2, 3)))


def _cfg(**kw) -> TrainConfig:
    base = dict(model="whitened", data="npz", epochs=2, batch_size=16, precision="fp32", lr=0.05, seed=3)
    return TrainConfig(**{**base, **kw})


def _trainer(cfg, out, resume=False, data=None) -> Trainer:
    data = data or _data()
    torch.manual_seed(0)
    return Trainer(cfg, out, resume=resume, model=Whitened(), train_data=data, test_data=data, progress=False)


ALL_ON = dict(ema_decay=0.8, ema_every=2, ema_warmup_power=3.0, lookahead=True, whiten_init=True,
              whiten_bias_epochs=1, dirac_init=True, norm_lr_scale=8.0, norm_weight_decay=0.0, crop_padding=2,
              crop_reflect=True, alternate_flips=True, tta="flip_translate", schedule="onecycle_linear",
              nesterov=True, label_smoothing=0.2)


# ---------------------------------------------------------------- config and schedule
@pytest.mark.parametrize("changes,match", [
    ({"tta": "mirror"}, "tta"), ({"tta": "none"}, "tta"), ({"ema_decay": 1.0}, "ema_decay"),
    ({"ema_decay": float("nan")}, "ema_decay"),
    ({"ema_every": 0}, "ema_every"), ({"lookahead": True}, "ema_decay"), ({"norm_lr_scale": 0.0}, "norm_lr_scale"),
    ({"norm_weight_decay": -1.0}, "norm_weight_decay"), ({"whiten_bias_epochs": 3}, "whiten_init"),
    ({"alternate_flips": True, "hflip": False}, "hflip"), ({"lr_start_factor": 0.0}, "lr_start_factor"),
    ({"ema_warmup_power": -1.0}, "ema_warmup_power"), ({"schedule": "triangle"}, "schedule"),
])
def test_bad_values_are_refused(changes, match):
    with pytest.raises(ValueError, match=match):
        _cfg(**changes)


def test_onecycle_linear_schedule():
    cfg = _cfg(schedule="onecycle_linear", lr=2.0, onecycle_pct=0.25, lr_start_factor=0.2, lr_end_factor=0.07)
    lrs = [lr_at(cfg, s, 100) for s in range(101)]
    assert lrs[0] == pytest.approx(0.4) and lrs[25] == pytest.approx(2.0) and lrs[100] == pytest.approx(0.14)
    assert lrs[10] == pytest.approx(0.4 + 1.6 * 10 / 25) and lrs[60] == pytest.approx(2.0 - 1.86 * 35 / 75)
    assert max(lrs) == lrs[25]


# ---------------------------------------------------------------- EMA
def test_ema_update_is_a_lerp_of_weights_and_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    ema = ModelEMA(model, decay=0.75, every=2, warmup_power=1.0)
    old = {k: v.clone() for k, v in ema.module.state_dict().items()}
    model.train()(torch.randn(4, 1, 3, 3))  # moves the BN buffers
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not ema.update(model, 3, 10)  # 3 is not a multiple of every=2: nothing happens
    assert ema.update(model, 4, 10)
    d = 0.75 * (4 / 10) ** 1.0  # the decay ramps up with the step
    new = model.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.is_floating_point():
            torch.testing.assert_close(v, d * old[k] + (1 - d) * new[k])
        else:
            assert torch.equal(v, new[k])  # num_batches_tracked: copied
    assert not torch.equal(ema.module[0].weight, model[0].weight)


def test_lookahead_copies_the_average_back():
    model = nn.Linear(2, 2)
    ema = ModelEMA(model, decay=0.5, lookahead=True)
    with torch.no_grad():
        before = model.weight.clone()
        model.weight.add_(2.0)
    ema.update(model, 1, 10)
    torch.testing.assert_close(model.weight, before + 1.0)
    torch.testing.assert_close(ema.module.weight, model.weight)


def test_trainer_evaluates_and_saves_the_ema_weights(tmp_path):
    t = _trainer(_cfg(ema_decay=0.9), tmp_path / "r")
    t.fit()
    raw, avg = t.model.state_dict(), t.ema.module.state_dict()
    assert not torch.equal(raw["conv.weight"], avg["conv.weight"])  # the average is not the trained weights
    data = _data()
    x = normalize(torch.from_numpy(data.x), t.mean, t.std)
    y = torch.from_numpy(data.y)
    with torch.no_grad():
        ema_loss = F.cross_entropy(t.ema.module.eval()(x), y).item()
        raw_loss = F.cross_entropy(t.model.eval()(x), y).item()
    result = t.evaluate()
    assert result["loss"] == pytest.approx(ema_loss, rel=1e-5) and result["loss"] != pytest.approx(raw_loss)
    tensors, _ = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.safetensors")
    assert all(torch.equal(tensors[f"ema/{k}"], v) for k, v in avg.items())
    assert all(torch.equal(tensors[f"model/{k}"], v) for k, v in raw.items())
    net = Whitened()
    saved = evaluate_run(tmp_path / "r", "last", test_data=data, model=net)
    assert weights_digest(net) == weights_digest(t.ema.module)  # cnnlab eval loads the average, not the weights
    assert saved["confusion"] == result["confusion"]


# ---------------------------------------------------------------- test-time augmentation
def test_tta_averages_the_views():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5)).eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        net(x)
        mirrored = lambda v: (net(v) + net(v.flip(-1))) / 2  # noqa: E731
        torch.testing.assert_close(tta_logits(net, x, None), net(x))
        torch.testing.assert_close(tta_logits(net, x, "flip"), mirrored(x))
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        six = mirrored(x) / 2 + (mirrored(padded[..., :6, :6]) + mirrored(padded[..., 2:, 2:])) / 4
        torch.testing.assert_close(tta_logits(net, x, "flip_translate"), six)
        assert not torch.allclose(tta_logits(net, x, "flip"), net(x))  # the net is not flip-invariant


def test_trainer_and_eval_use_the_configured_views(tmp_path, monkeypatch):
    t = _trainer(_cfg(epochs=1, tta="flip"), tmp_path / "r")
    t.fit()
    data = _data()
    x = normalize(torch.from_numpy(data.x), t.mean, t.std)
    with torch.no_grad():
        t.model.eval()
        expected = F.cross_entropy((t.model(x) + t.model(x.flip(-1))) / 2, torch.from_numpy(data.y)).item()
    assert t.evaluate()["loss"] == pytest.approx(expected, rel=1e-5)
    evaluate_module = importlib.import_module("cnnlab.train.evaluate")  # the name cnnlab.train.evaluate: the function

    modes = []
    monkeypatch.setattr(evaluate_module, "tta_logits", lambda net, x, mode: modes.append(mode) or net(x))
    evaluate_run(tmp_path / "r", "last", test_data=data, model=Whitened())
    assert modes and set(modes) == {"flip"}  # cnnlab eval evaluates the run's views too


# ---------------------------------------------------------------- initialisations
def test_whitening_filters_whiten_the_patches():
    data = _data(200)
    x = normalize(torch.from_numpy(data.x), *_stats(data), channels_last=False)
    raw = patch_moments(x, (2, 2))
    assert (raw - torch.diag(raw.diagonal())).abs().max() > 0.3  # the patches are strongly correlated
    w = whitening_filters(x, (2, 2), eps=0.0).double()
    out = F.conv2d(x.double(), w)  # N, 12, 7, 7: the patches in the whitening basis
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    torch.testing.assert_close(flat.T @ flat / len(flat), torch.eye(12, dtype=torch.float64), atol=1e-6, rtol=0)


def _stats(data: ArrayDataset):
    from cnnlab.data import channel_stats

    return channel_stats(data.x)


def test_trainer_whitens_from_the_training_data_and_freezes(tmp_path):
    data = _data()
    t = _trainer(_cfg(whiten_init=True, whiten_bias_epochs=1, epochs=3), tmp_path / "r", data=data)
    x = normalize(torch.from_numpy(data.x), t.mean, t.std, channels_last=False)
    w = whitening_filters(x, (2, 2))
    assert torch.equal(t.model.whiten.weight, torch.cat([w, -w]))  # from these images, with the negatives
    assert not t.model.whiten.weight.requires_grad
    with torch.no_grad():
        out = F.conv2d(x, w).permute(0, 2, 3, 1).reshape(-1, 12)
    cov = out.T @ out / len(out)
    assert (cov - torch.eye(12)).abs().max() < 0.05  # ~identity (eps 5e-4 shrinks tiny directions a little)
    weight, bias0 = t.model.whiten.weight.clone(), t.model.whiten.bias.clone()
    t.fit(until_step=3)  # epoch 0: the bias trains
    bias1 = t.model.whiten.bias.clone()
    assert not torch.equal(bias0, bias1)
    t.fit()  # epochs 1 and 2: whiten_bias_epochs=1, the bias stays
    assert torch.equal(t.model.whiten.bias, bias1) and torch.equal(t.model.whiten.weight, weight)
    other = _trainer(_cfg(whiten_init=True), tmp_path / "o", data=_data(seed=1))
    assert not torch.equal(other.model.whiten.weight, t.model.whiten.weight)  # computed from the data


def test_dirac_init_is_the_identity_on_the_first_channels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, padding=1, bias=False), nn.Conv2d(5, 2, 3, padding=1, bias=False),
                          nn.Conv2d(2, 2, 3, padding=1, groups=2, bias=False))
    untouched = model[0].weight[3:].clone()
    depthwise = model[2].weight.clone()
    assert init_dirac(model) == 2  # grouped convs are left as built
    x, z = torch.randn(1, 3, 4, 4), torch.randn(1, 5, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(model[0](x)[:, :3], x)  # 3 -> 5: filters 0..2 pass channels 0..2 through
        torch.testing.assert_close(model[1](z), z[:, :2])  # 5 -> 2: as many channels as there are filters
    assert torch.equal(model[0].weight[3:], untouched) and torch.equal(model[2].weight, depthwise)


# ---------------------------------------------------------------- parameter groups
def test_norm_parameters_get_their_own_lr_and_weight_decay(tmp_path):
    cfg = _cfg(norm_lr_scale=64.0, norm_weight_decay=0.0, weight_decay=5e-4, whiten_init=True,
               whiten_bias_epochs=1)
    model = Whitened()
    model.whiten.weight.requires_grad_(False)
    groups = {g["cnnlab_group"]: g["params"] for g in param_groups(model, cfg)}
    assert groups["norm"] == [model.bn.weight, model.bn.bias] and groups["whiten_bias"] == [model.whiten.bias]
    assert groups["main"] == [model.conv.weight, model.fc.weight, model.fc.bias]  # frozen weights left out
    t = _trainer(cfg, tmp_path / "r")
    set_group_hyperparameters(t.optimizer, cfg, 0.1, epoch=0)
    got = {g["cnnlab_group"]: (g["lr"], g["weight_decay"]) for g in t.optimizer.param_groups}
    assert got == {"main": (0.1, 5e-4), "norm": (pytest.approx(6.4), 0.0), "whiten_bias": (0.1, 5e-4)}
    set_group_hyperparameters(t.optimizer, cfg, 0.1, epoch=1)
    assert {g["cnnlab_group"]: g["lr"] for g in t.optimizer.param_groups}["whiten_bias"] == 0.0
    assert len(_trainer(_cfg(), tmp_path / "plain").optimizer.param_groups) == 1  # no options: one group


# ---------------------------------------------------------------- all together
def test_resume_with_every_option_is_bitwise_exact(tmp_path):
    cfg = _cfg(epochs=3, **ALL_ON)
    straight = _trainer(cfg, tmp_path / "a")
    straight.fit()
    _trainer(cfg, tmp_path / "b").fit(until_step=4)  # stops mid-epoch 2, between two EMA updates
    torch.manual_seed(12345)
    resumed = _trainer(cfg, tmp_path / "b", resume=True)
    resumed.fit()
    assert weights_digest(straight.model) == weights_digest(resumed.model)
    assert weights_digest(straight.ema.module) == weights_digest(resumed.ema.module)
    assert straight.evaluate() == resumed.evaluate()
