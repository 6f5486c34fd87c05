"""Training: TrainConfig, the Trainer (run directory, checkpoints, resume, DDP) and evaluation of a run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig, from_dict, load_config_file, parse_override
from cnnlab.train.optim import build_optimizer, lr_at
from cnnlab.train.rundir import RunLockedError, read_record, run_config
from cnnlab.train.trainer import (
    NonFiniteLossError,
    RunFinishedError,
    Trainer,
    TrainingInterrupted,
    evaluate_run,
)

__all__ = ["NonFiniteLossError", "RunFinishedError", "RunLockedError", "TrainConfig", "Trainer",
           "TrainingInterrupted", "build_optimizer", "evaluate_run", "from_dict", "load_checkpoint",
           "load_config_file", "lr_at", "parse_override", "read_record", "run_config", "save_checkpoint", "train"]


def train(config: TrainConfig, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run ``config`` into run directory ``out`` to the end; returns the summary (see ``Trainer``)."""
    return Trainer(config, out, **kwargs).fit()
