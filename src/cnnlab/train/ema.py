"""An exponential moving average (EMA) of a model's weights, optionally fed back as Lookahead.

Every ``every`` optimiser steps, each floating-point tensor of the state dict (parameters and BatchNorm running
statistics) moves towards the trained model's: ``ema = decay * ema + (1 - decay) * weights``; integer buffers
(BatchNorm's batch count) are copied. The decay may ramp up as ``decay * (step / total_steps) ** warmup_power``,
so that the average forgets the random initialisation quickly. With ``lookahead`` the trained weights are set
to the average after each update: Lookahead's slow weights (Zhang et al. 2019, arXiv:1907.08610) in the form
airbench uses (K. Jordan 2024, arXiv:2404.00498: decay 0.95^5 every 5 steps, ramped with power 3).

The average is a full copy of the model, kept in eval mode: it is what the Trainer evaluates, and checkpoints
store it under ``ema/<state-dict key>`` next to the trained weights, so a resumed run continues it exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

PREFIX = "ema/"


class ModelEMA:
    """The moving average of ``model``; call ``update(model, step, total_steps)`` after each optimiser step."""

    def __init__(self, model: nn.Module, decay: float, every: int = 1, warmup_power: float = 0.0,
                 lookahead: bool = False) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.decay, self.every, self.warmup_power, self.lookahead = decay, every, warmup_power, lookahead
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        state = self.module.state_dict()
        self.float_keys = [k for k, v in state.items() if v.is_floating_point()]
        self.other_keys = [k for k, v in state.items() if not v.is_floating_point()]
        self._float = [state[k] for k in self.float_keys]  # load_state_dict copies into these same tensors
        self._other = [state[k] for k in self.other_keys]

    def decay_at(self, step: int, total_steps: int) -> float:
        """The decay of the update after optimiser step ``step`` (1-based) of ``total_steps``."""
        if self.warmup_power == 0:
            return self.decay
        return self.decay * (min(step, total_steps) / max(1, total_steps)) ** self.warmup_power

    @torch.no_grad()
    def update(self, model: nn.Module, step: int, total_steps: int) -> bool:
        """Average ``model`` in when ``step`` is a multiple of ``every``; returns whether it did."""
        if step % self.every:
            return False
        state = model.state_dict()
        weights = [state[k] for k in self.float_keys]
        torch._foreach_lerp_(self._float, weights, 1.0 - self.decay_at(step, total_steps))
        for mine, theirs in zip(self._other, (state[k] for k in self.other_keys)):
            mine.copy_(theirs)
        if self.lookahead:
            torch._foreach_copy_(weights, self._float)
        return True

    def tensors(self) -> dict[str, torch.Tensor]:
        """The average's state dict under ``ema/`` keys, for a checkpoint."""
        return {PREFIX + k: v for k, v in self.module.state_dict().items()}

    def load(self, tensors: dict[str, torch.Tensor], source: str = "the checkpoint") -> None:
        """Restore the average from checkpoint tensors (``ema/`` keys); raises when ``source`` has none."""
        if not load_ema_weights(self.module, tensors):
            raise ValueError(f"{source} holds no EMA weights (ema/ tensors) although the run averages its weights")


def load_ema_weights(model: nn.Module, tensors: dict[str, torch.Tensor]) -> bool:
    """Load a checkpoint's EMA weights into ``model`` when it has them; returns whether it did."""
    weights = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    if weights:
        model.load_state_dict(weights, strict=True)
    return bool(weights)
