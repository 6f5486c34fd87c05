"""Training: TrainConfig, the Trainer (run directory, checkpoints, resume, DDP), evaluation, and a trained run's
network for inference (``load_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig, from_dict, load_config_file, parse_override
from cnnlab.train.evaluate import evaluate  # cnnlab.train.evaluate is this function; the module: sys.modules
from cnnlab.train.optim import build_optimizer, lr_at
from cnnlab.train.rundir import RunFinishedError, RunLockedError, read_record, run_config
from cnnlab.train.runs import RunInfo, evaluate_run, load_run
from cnnlab.train.step import NonFiniteLossError, TrainingInterrupted
from cnnlab.train.trainer import Trainer

__all__ = ["NonFiniteLossError", "RunFinishedError", "RunInfo", "RunLockedError", "TrainConfig", "Trainer",
           "TrainingInterrupted", "build_optimizer", "evaluate", "evaluate_run", "from_dict", "load_checkpoint",
           "load_config_file", "load_run", "lr_at", "parse_override", "read_record", "run_config",
           "save_checkpoint", "train"]


def train(config: TrainConfig, out: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Run ``config`` into run directory ``out`` to the end; returns the summary (see ``Trainer``)."""
    return Trainer(config, out, **kwargs).fit()
