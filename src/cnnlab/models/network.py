"""Network: the one module class every zoo model is, built from named stages and a head."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class ModelOutput(NamedTuple):
    """Train-mode output of a network with auxiliary classifiers: main logits and aux logits in depth order."""

    logits: torch.Tensor
    aux_logits: tuple[torch.Tensor, ...]


class Network(nn.Module):
    """A sequence of named stages, then a classifier head, with optional auxiliary heads after stages.

    Stages are direct children under their paper names (``conv1``, ``layer4``, ``inception5b``) so that
    analysis at ``depth=1`` shows the paper's table. In train mode a network with aux heads returns a
    ``ModelOutput``; in eval mode (or with ``aux_logits=False``) it returns the main logits only.

    ``min_input_size`` is the smallest H, W of the main path, checked in every mode; ``aux_min_input_size``
    (None: no more than the main path needs) is checked only when the aux heads run (train mode).
    """

    def __init__(
        self,
        stages: Sequence[tuple[str, nn.Module]],
        head: nn.Module,
        aux_heads: Mapping[str, nn.Module] | None = None,
        in_channels: int = 3,
        min_input_size: int | tuple[int, int] = 1,
        name: str = "",
        aux_min_input_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.stage_names: list[str] = []
        for stage_name, module in stages:
            if stage_name in ("head", "aux_heads"):
                raise ValueError(f"stage name {stage_name!r} is reserved; rename the stage")
            self.add_module(stage_name, module)
            self.stage_names.append(stage_name)
        aux_heads = dict(aux_heads or {})
        for after in aux_heads:
            if after not in self.stage_names:
                raise ValueError(f"aux head placed after unknown stage {after!r}; stages are {self.stage_names}")
        self.aux_heads = nn.ModuleDict(aux_heads) if aux_heads else None
        self.head = head
        self.in_channels = in_channels
        self.min_input_size = _pair(min_input_size)
        # an aux head placed on a small grid (Inception-v3's 5x5/3 pool on the 17x17 map) can need a larger input
        # than the main path; only train mode runs it, so only train mode is held to its minimum
        self.aux_min_input_size = None if aux_min_input_size is None else _pair(aux_min_input_size)
        self.model_name = name

    @property
    def has_aux(self) -> bool:
        return self.aux_heads is not None

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"{self.model_name or 'model'} expects input of shape (N, {self.in_channels}, H, W), "
                             f"got {tuple(x.shape)}")
        height, width = x.shape[-2], x.shape[-1]
        main_h, main_w = self.min_input_size
        if self.training and self.aux_heads is not None and self.aux_min_input_size is not None:
            # the main path runs too, so train mode needs the larger of both per side
            aux_h, aux_w = max(self.aux_min_input_size[0], main_h), max(self.aux_min_input_size[1], main_w)
            if (aux_h, aux_w) != (main_h, main_w) and (height < aux_h or width < aux_w):
                raise ValueError(f"input {height}x{width} is too small for the auxiliary classifier of "
                                 f"{self.model_name or 'this model'}, which runs in train mode: the smallest valid "
                                 f"size is {aux_h}x{aux_w}; eval mode or aux_logits=False accepts inputs down to "
                                 f"{main_h}x{main_w}")
        if height < main_h or width < main_w:
            raise ValueError(f"input {height}x{width} is too small for {self.model_name or 'this model'}: "
                             f"the smallest valid size is {main_h}x{main_w}")

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the stages; returns the last feature map and aux logits (empty unless training with aux)."""
        if not torch.jit.is_tracing():  # a traced graph (ONNX export) fixes the shape; the checks would only warn
            self._check_input(x)
        aux: list[torch.Tensor] = []
        run_aux = self.aux_heads is not None and self.training
        for stage_name in self.stage_names:
            x = getattr(self, stage_name)(x)
            if run_aux and stage_name in self.aux_heads:  # type: ignore[operator]
                aux.append(self.aux_heads[stage_name](x))  # type: ignore[index]
        return x, aux

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor | ModelOutput:
        features, aux = self.forward_features(x)
        logits = self.forward_head(features)
        if aux:
            return ModelOutput(logits, tuple(aux))
        return logits

    def prepend_stage(self, name: str, module: nn.Module) -> None:
        """Run ``module`` before the first stage (e.g. an input re-scaling that a reference network builds in)."""
        if hasattr(self, name):
            raise ValueError(f"{self.model_name or 'the network'} already has a {name!r}; choose another name")
        self.add_module(name, module)
        self.stage_names.insert(0, name)

    def reset_classifier(self, num_classes: int) -> None:
        """New classifier (and aux classifiers) for ``num_classes`` outputs; the features are kept."""
        modules = [self.head] + (list(self.aux_heads.values()) if self.aux_heads is not None else [])
        for module in modules:
            if not hasattr(module, "reset_classifier"):
                raise TypeError(f"{type(module).__name__} has no reset_classifier(num_classes)")
            module.reset_classifier(num_classes)


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def aux_loss(
    output: torch.Tensor | ModelOutput,
    target: torch.Tensor,
    aux_weights: float | Sequence[float] = 0.3,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> torch.Tensor:
    """Main loss plus weighted auxiliary losses (GoogLeNet, Szegedy et al. 2015 Sec. 5: weight 0.3 each).

    Accepts plain logits too (eval mode, or a model without aux heads), so a training loop calls it always.
    """
    if not isinstance(output, ModelOutput):
        return criterion(output, target)
    weights = [aux_weights] * len(output.aux_logits) if isinstance(aux_weights, (int, float)) else list(aux_weights)
    if len(weights) != len(output.aux_logits):
        raise ValueError(f"aux_weights has {len(weights)} entries but the model returned "
                         f"{len(output.aux_logits)} auxiliary outputs")
    loss = criterion(output.logits, target)
    for w, logits in zip(weights, output.aux_logits):
        loss = loss + w * criterion(logits, target)
    return loss
