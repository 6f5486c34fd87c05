"""precision="auto" picks the faster option of each kind of CPU: bfloat16 autocast where the CPU computes bfloat16
natively (AVX512-BF16 / AMX: oneDNN's bf16 convolutions beat fp32), fp32 where it would be emulated (measured 2x
slower, BENCHMARKS.md ## Training). The capability probe is mocked, so both kinds are tested on any machine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import cnnlab.train.components as components
from cnnlab.data import ArrayDataset
from cnnlab.train import TrainConfig, Trainer
from cnnlab.train.trainer import resolve_precision

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("native,expected", [(True, torch.bfloat16), (False, None)])
def test_auto_follows_the_cpu(monkeypatch, native, expected):
    monkeypatch.setattr(components, "native_cpu_bf16", lambda: native)
    assert resolve_precision("auto", CPU) is expected
    assert resolve_precision("fp32", CPU) is None  # explicit choices hold on both kinds
    assert resolve_precision("bf16", CPU) is torch.bfloat16  # emulated where not native, but asked for


@pytest.mark.parametrize("native,autocast", [(True, "bfloat16"), (False, "fp32")])
def test_trainer_records_the_auto_choice(monkeypatch, tmp_path, native, autocast):
    monkeypatch.setattr(components, "native_cpu_bf16", lambda: native)
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.integers(0, 256, (8, 4, 4, 3), dtype=np.uint8), np.arange(8) % 2, ("a", "b"))
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    cfg = TrainConfig(model="m", data="npz", epochs=1, batch_size=4, device="cpu")  # precision="auto"
    t = Trainer(cfg, tmp_path / "r", model=model, train_data=data, test_data=data, progress=False)
    assert t.precision is (torch.bfloat16 if native else None)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["environment"]["autocast"] == autocast


def test_probe_reads_the_cpu_flags(monkeypatch):
    for flags, native in (((False, False), False), ((True, False), True), ((False, True), True)):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda f=flags: f[0], raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda f=flags: f[1], raising=False)
        assert components.native_cpu_bf16() is native


@pytest.mark.parametrize(("local_rank", "gpus", "expected"), [("0", 1, 0), ("1", 1, 0), ("3", 2, 1), ("1", 4, 1)])
def test_auto_device_maps_local_ranks_onto_the_gpus_there_are(monkeypatch, local_rank, gpus, expected):
    # an experiment may share its runs over more torchrun processes than the machine has GPUs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    assert components.resolve_device("auto") == torch.device("cuda", expected)
