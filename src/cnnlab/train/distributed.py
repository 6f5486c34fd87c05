"""Training on several processes: torchrun's environment, PyTorch's process group and DistributedDataParallel.

cnnlab adds no engine of its own. ``Distributed`` reads what torchrun sets (``torchrun_env``), joins
the process group (gloo on the CPU, NCCL on GPUs), wraps the model in DistributedDataParallel, and offers the
few collectives the Trainer needs to keep the ranks in step: every rank stops on the same step, evaluates with
the same BatchNorm statistics, and can prove at the end that it holds the same weights (``weights_digest``).
On one process every method is a no-op, so the Trainer has one code path.
"""

from __future__ import annotations

import datetime
import hashlib
import os

import torch
from torch import nn

__all__ = ["Distributed", "check_world_change", "torchrun_env", "weights_digest"]


def torchrun_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) as torchrun sets them (RANK, WORLD_SIZE, LOCAL_RANK); (0, 1, 0) without it.
    torchrun's interface: the only environment variables cnnlab reads to decide what to do."""
    env = os.environ
    return int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")), int(env.get("LOCAL_RANK", "0"))


class Distributed:
    """Rank, world size and the process group that torchrun's environment describes (one process otherwise, or
    when not ``join``: this process alone, rank 0 of 1, whatever torchrun says).

    The group is created here unless the caller made one already; ``close`` destroys only a group made here.
    """

    def __init__(self, device: torch.device, timeout: datetime.timedelta = datetime.timedelta(minutes=10), *,
                 join: bool = True) -> None:
        self.rank, self.world_size, _ = torchrun_env() if join else (0, 1, 0)
        self.owns_group = False
        if self.world_size > 1 and not torch.distributed.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(device)  # NCCL collectives and all_gather_object use the current device
            backend = "nccl" if device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend=backend, timeout=timeout)
            self.owns_group = True

    @property
    def active(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run directory."""
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every rank gets here."""
        if self.active:
            torch.distributed.barrier()

    def any(self, flags: list[float], device: torch.device) -> list[float]:
        """Elementwise max of ``flags`` over all ranks (so every rank stops on the same step)."""
        if not self.active:
            return flags
        t = torch.tensor(flags, dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return t.tolist()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over all ranks in place; returns it."""
        if self.active:
            torch.distributed.all_reduce(t)
        return t

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers on every rank. Each rank's forward updates its own BatchNorm running statistics
        from its own shard; DDP broadcasts rank 0's at the start of the next forward, so this changes no
        training step, only what the ranks evaluate and save in between."""
        if not self.active:
            return
        for buffer in module.buffers():
            if buffer.is_contiguous():
                torch.distributed.broadcast(buffer, src=0)
            else:
                dense = buffer.contiguous()
                torch.distributed.broadcast(dense, src=0)
                buffer.copy_(dense)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` in DistributedDataParallel (the model itself on one process). DDP broadcasts rank 0's
        parameters and buffers when it is built, so every rank starts from the same state."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def ranks_identical(self, model: nn.Module) -> bool | None:
        """Whether every rank holds bitwise-identical weights and buffers (None on one process)."""
        if not self.active:
            return None
        digests: list[str | None] = [None] * self.world_size
        torch.distributed.all_gather_object(digests, weights_digest(model))
        return len(set(digests)) == 1

    def close(self) -> None:
        """Destroy the process group if this object created it."""
        if self.owns_group:
            torch.distributed.destroy_process_group()
            self.owns_group = False


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer (name, dtype, shape, bytes), in state-dict order: equal digests mean
    bitwise-equal weights. Any dtype and shape, 0-dim included (BatchNorm's num_batches_tracked)."""
    h = hashlib.sha256()
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):  # a module's extra state
            h.update(f"{name}={value!r}".encode())
            continue
        h.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
        # flat first: a 0-dim tensor cannot be viewed as bytes of another element size
        flat = value.detach().cpu().contiguous().reshape(-1)
        h.update(flat.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()



def _processes(n: int) -> str:
    return f"{n} process{'' if n == 1 else 'es'}"


def check_world_change(where: object, before: int, now: int, batch: int) -> str:
    """Resuming run ``where``, trained on ``before`` processes with global batch ``batch``, on ``now`` processes.

    ``batch_size`` is the global batch, so the run goes on with the same images per step, split ``now`` ways:
    returns the line to tell the user. ValueError in one line when ``now`` does not divide ``batch``."""
    if batch % now:
        raise ValueError(f"{where} trained on {_processes(before)} with a global batch of {batch}, which "
                         f"{_processes(now)} cannot split evenly; resume it on {_processes(before)}, or on a number "
                         f"of processes that divides {batch}")
    return (f"{_processes(now)} instead of {before}: the global batch stays {batch} images, {batch // now} per "
            f"process (before: {batch // before}), so BatchNorm layers normalise over {batch // now} images")
