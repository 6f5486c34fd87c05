"""Checkpoints as single safetensors files: tensors (model, optimiser state, RNG states) plus a JSON header
entry for everything else. One file per checkpoint, written to a temp file and renamed, so a checkpoint is
always whole; loading parses tensors and JSON only and never executes code."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from cnnlab._io import atomic_write

_META_KEY = "cnnlab"


class NonFiniteStateError(ValueError):
    """A tensor about to be saved (or just loaded) holds NaN or infinity."""


def first_non_finite(tensors: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None (one device sync)."""
    items = [(k, v) for k, v in tensors.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    if not items:
        return None
    device = items[0][1].device
    finite = torch.stack([torch.isfinite(v).all().to(device) for _, v in items]).cpu()
    if bool(finite.all()):
        return None
    return items[int((~finite).nonzero()[0])][0]


def _accelerator() -> tuple[str, Any] | None:
    """The accelerator's device type and torch module (``cuda``, ``xpu``, ``mps``, ...); None on a CPU-only host."""
    if hasattr(torch, "accelerator"):
        found = torch.accelerator.current_accelerator()
    else:  # torch < 2.6
        found = torch.device("cuda") if torch.cuda.is_available() else None
    return None if found is None else (found.type, getattr(torch, found.type))


def fork_rng() -> contextlib.AbstractContextManager:
    """``torch.random.fork_rng`` over the states ``rng_state`` holds: inside, a run may seed and draw from the
    process-wide generators (init and dropout use them); the caller's states come back after."""
    accelerator = _accelerator()
    if accelerator is None:
        return torch.random.fork_rng(devices=())
    kind, module = accelerator
    return torch.random.fork_rng(devices=range(module.device_count()), device_type=kind)


def seed_rng(seed: int) -> None:
    """Seed the states ``rng_state`` holds, as ``torch.manual_seed`` does (call it inside ``fork_rng``)."""
    torch.random.default_generator.manual_seed(seed)
    if (accelerator := _accelerator()) is not None:
        module = accelerator[1]
        getattr(module, "manual_seed_all", module.manual_seed)(seed)  # torch.mps has one device, no _all


def rng_state() -> dict[str, torch.Tensor]:
    """The process-wide torch RNG states (the CPU's, and each accelerator device's as ``rng/<type>/<index>``):
    dropout and init draw from them."""
    states = {"rng/torch_cpu": torch.get_rng_state()}
    if (accelerator := _accelerator()) is not None:
        kind, module = accelerator
        for i in range(module.device_count()):
            states[f"rng/{kind}/{i}"] = module.get_rng_state(i)
    return states


def set_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    """Restore what ``rng_state`` saved (another accelerator's states, a run moved between machines, are left)."""
    torch.set_rng_state(tensors["rng/torch_cpu"])
    if (accelerator := _accelerator()) is not None:
        kind, module = accelerator
        for i in range(module.device_count()):
            if f"rng/{kind}/{i}" in tensors:
                module.set_rng_state(tensors[f"rng/{kind}/{i}"], i)


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for idx, entry in state["state"].items():
        plain = {}
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{key}"] = value
            else:
                plain[key] = value
        rest["state"][str(idx)] = plain
    return tensors, rest


def _join_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in rest["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, idx, key = name.split("/", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None,
                    extra_tensors: dict[str, torch.Tensor], meta: dict[str, Any], *,
                    check_finite: bool = True) -> None:
    """Write model weights, optimiser state, ``extra_tensors`` (RNG states) and the JSON ``meta`` atomically.

    A weight, buffer or optimiser tensor holding NaN or infinity raises NonFiniteStateError and writes nothing
    (``check_finite=False`` when the caller has just checked), so a checkpoint on disk is always finite."""
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    optim_rest = None
    if optimizer is not None:
        optim_tensors, optim_rest = _split_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
    tensors.update(extra_tensors)
    # safetensors wants contiguous, unshared CPU tensors
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    bad = first_non_finite(tensors) if check_finite else None
    if bad is not None:
        raise NonFiniteStateError(f"{bad} holds NaN or infinity; {path} was not written")
    header = json.dumps({**meta, "optimizer": optim_rest})
    atomic_write(path, st_save(tensors, metadata={_META_KEY: header}))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, meta) of a checkpoint; raises ValueError naming the file when it is not a cnnlab checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; the run has not saved one yet")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(_META_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"checkpoint {path} is unreadable ({exc}); resume from another run or start afresh") from None
    if header is None:
        raise ValueError(f"{path} is a safetensors file without cnnlab metadata; it is not a cnnlab checkpoint")
    return tensors, json.loads(header)


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON header of a checkpoint, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = (f.metadata() or {}).get(_META_KEY)
        return json.loads(header) if header is not None else {}
    except (SafetensorError, OSError, ValueError):
        return {}


def restore(tensors: dict[str, torch.Tensor], meta: dict[str, Any], model: nn.Module,
            optimizer: torch.optim.Optimizer | None) -> None:
    """Load weights (strictly) and optimiser state from a loaded checkpoint into live objects."""
    weights = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
    model.load_state_dict(weights, strict=True)
    if optimizer is not None and meta.get("optimizer") is not None:
        optimizer.load_state_dict(_join_optimizer(tensors, meta["optimizer"]))
