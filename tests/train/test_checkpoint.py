"""train/checkpoint.py's RNG helpers on an accelerator: seeded, saved, restored and forked per device.

No accelerator here: a stand-in module with one generator per device, as torch.xpu and torch.mps have, takes the
place of ``torch.<type>`` for the device type ``torch.accelerator`` reports."""

from __future__ import annotations

import pytest
import torch

from cnnlab.train.checkpoint import fork_rng, rng_state, seed_rng, set_rng_state


class _Accelerator:
    def __init__(self, devices: int, seed_all: bool) -> None:
        self.generators = [torch.Generator().manual_seed(100 + i) for i in range(devices)]
        if seed_all:  # torch.cuda and torch.xpu have manual_seed_all; torch.mps (one device) has manual_seed only
            self.manual_seed_all = lambda seed: [g.manual_seed(seed) for g in self.generators]

    def device_count(self) -> int:
        return len(self.generators)

    def get_rng_state(self, device: int = 0) -> torch.Tensor:
        return self.generators[device].get_state()

    def set_rng_state(self, state: torch.Tensor, device: int = 0) -> None:
        self.generators[device].set_state(state)

    def manual_seed(self, seed: int) -> None:
        self.generators[0].manual_seed(seed)

    def draws(self) -> list[float]:
        return [torch.rand(1, generator=g).item() for g in self.generators]


@pytest.mark.parametrize(("kind", "devices", "seed_all"), [("xpu", 2, True), ("mps", 1, False)])
def test_the_run_rng_covers_the_accelerator_torch_reports(monkeypatch, kind, devices, seed_all):
    fake = _Accelerator(devices, seed_all)
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda *args, **kwargs: torch.device(kind))
    monkeypatch.setattr(torch, kind, fake)  # what torch.get_device_module(kind) returns
    callers = [fake.get_rng_state(i) for i in range(devices)]
    with fork_rng():
        seed_rng(5)  # every device, as torch.manual_seed seeds them
        seeded = rng_state()
        assert set(seeded) == {"rng/torch_cpu", *(f"rng/{kind}/{i}" for i in range(devices))}
        first = fake.draws()
        assert fake.draws() != first
        set_rng_state(seeded)
        assert fake.draws() == first
    assert all(torch.equal(fake.get_rng_state(i), s) for i, s in enumerate(callers))  # the caller's states are back
    with fork_rng():
        seed_rng(5)
        assert fake.draws() == first
        set_rng_state({"rng/torch_cpu": torch.get_rng_state(), "rng/cuda/0": seeded["rng/torch_cpu"]})
        assert fake.draws() != first  # another accelerator's saved state is not applied to this one
