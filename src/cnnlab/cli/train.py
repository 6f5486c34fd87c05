"""``cnnlab train`` and ``cnnlab eval``: train a model into a run directory; report a run's test accuracy."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cnnlab.cli import CLIError

# command-line flag -> config key (flags left unset do not override the config file or --set)
_FLAGS = {"data": "data", "data_dir": "data_dir", "train_file": "train_file", "test_file": "test_file",
          "epochs": "epochs", "max_steps": "max_steps", "subset": "subset", "batch_size": "batch_size",
          "lr": "lr", "seed": "seed", "tensorboard": "tensorboard"}


def in_ci() -> bool:
    """Whether CI is set (CI=true, 1 or yes): CI logs keep every redraw of a progress bar, even on a
    pseudo-terminal, so the CLI draws none there (the library reads no environment: the CLI decides)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``eval`` subcommands."""
    from cnnlab.data import DATASETS

    p = subparsers.add_parser("train", help="train a model on an image data set into a run directory",
                              description="Train a zoo model (or package.module:callable) with TrainConfig; "
                                          "works under torchrun for several processes.")
    p.add_argument("model", nargs="?", help="registry name (cnnlab list) or package.module:callable")
    p.add_argument("--data", choices=DATASETS, help="data set (default cifar10)")
    p.add_argument("--data-dir", help="folder with the official files (default ./data)")
    p.add_argument("--train-file", help="--data npz/imagefolder: training .npz or folder")
    p.add_argument("--test-file", help="--data npz/imagefolder: test .npz or folder")
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA-TIME)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--subset", type=int, help="train on the first N training images")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--recipe", metavar="NAME", help="start from a named recipe's settings and model (the config "
                                                    "file, MODEL, flags and --set override them)")
    p.add_argument("--list-recipes", action="store_true", help="list the recipes with their sources and exit")
    p.add_argument("--config", help="YAML or JSON file of config keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint "
                                                       "(a finished one: with a larger --epochs / --max-steps)")
    p.add_argument("--allow-change", action="append", default=[], metavar="KEY[,KEY]",
                   help="with --resume: let these optimisation settings (lr, weight_decay, momentum, ...) change "
                        "from the resumed step on; config.json records each change and its step")
    p.add_argument("--restretch-schedule", action="store_true",
                   help="with --resume and a new --epochs / --max-steps: stretch a cosine / one-cycle schedule, "
                        "or a step schedule with milestones as fractions, over the new length (by default it keeps "
                        "the length it started with)")
    p.add_argument("--tensorboard", action="store_true", default=None,
                   help="also write TensorBoard event files to RUN_DIR/tensorboard (needs the tensorboard "
                        "package: pip install 'cnnlab[tensorboard]')")
    p.add_argument("--quiet", action="store_true",
                   help="print no start line, epoch lines or progress bar (the bar is drawn only on a terminal "
                        "without CI=true; a log file gets the lines alone)")
    p.add_argument("--trust-run-code", action="store_true",
                   help="let a --config file or a resumed run's config.json import the package.module:callable "
                        "it names (by default only the MODEL you type is imported)")
    p.set_defaults(handler=run_train)

    e = subparsers.add_parser("eval", help="test accuracy (top-1, top-5, per class) and confusion matrix of a run",
                              description="Evaluate a run's best (or last) checkpoint on its test set, or on "
                                          "another one of the same image shape and classes: top-1 and top-5 "
                                          "accuracy, loss, accuracy per class, and the confusion matrix (shown "
                                          "up to 10 classes, or with --confusion).")
    e.add_argument("run_dir")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best")
    e.add_argument("--test-file", help="npz/imagefolder runs: evaluate on this test file or folder instead")
    e.add_argument("--data-dir", help="official-format runs: the folder that now holds the data set's files")
    e.add_argument("--model", help="build this network (registry name or package.module:callable) with the "
                                   "run's options instead of the one its checkpoint names")
    e.add_argument("--trust-run-code", action="store_true",
                   help="import the package.module:callable the checkpoint names (only for runs you trust)")
    e.add_argument("--tta", choices=("run", "none", "flip", "flip_translate"), default="run",
                   help="test-time augmentation: the run's own (default), none, or the one named")
    e.add_argument("--confusion", action="store_true",
                   help="print the confusion matrix however many classes there are (default: up to 10)")
    e.add_argument("--json", action="store_true", help="print the result as JSON (the confusion matrix included)")
    e.set_defaults(handler=run_eval)


def _load_file(path: str) -> dict[str, Any]:
    from cnnlab.train import load_config_file

    return load_config_file(path)


def _config(args: argparse.Namespace, base: dict[str, Any] | None = None):
    from cnnlab.models import check_trusted
    from cnnlab.train import TrainConfig, from_dict, parse_override

    values: dict[str, Any] = _load_file(args.config) if args.config else {}
    if "model" in values and not args.model and isinstance(values["model"], str):
        check_trusted(values["model"], f"config file {args.config}", trusted=args.trust_run_code)
    if args.recipe:
        from cnnlab.train.recipes import get_recipe

        values = {**get_recipe(args.recipe).settings, **values}  # the recipe first: everything else overrides it
    if args.model:
        values["model"] = args.model
    for flag, key in _FLAGS.items():
        if getattr(args, flag) is not None:
            values[key] = getattr(args, flag)
    for text in args.set:
        key, value = parse_override(text)
        values[key] = value
    config = from_dict(values, from_dict(base) if base is not None else TrainConfig())
    _check_data_keys(config, values)
    return config


def _check_data_keys(config: Any, given: dict[str, Any]) -> None:
    """A data key that the chosen data set ignores is an error, not a silent no-op."""
    files = config.data in ("npz", "imagefolder")
    if files and "data_dir" in given:
        raise CLIError(f"--data-dir does not apply to --data {config.data}, which reads --train-file and "
                       f"--test-file; drop --data-dir")
    for key in ("train_file", "test_file"):
        if not files and given.get(key) is not None:
            flag = "--" + key.replace("_", "-")
            raise CLIError(f"{flag} applies to --data npz or imagefolder only; --data {config.data} reads its "
                           f"official files from --data-dir")


def _allowed_changes(args: argparse.Namespace) -> list[str]:
    keys = [k.strip() for text in args.allow_change for k in text.split(",") if k.strip()]
    if (keys or args.restretch_schedule) and not args.resume:
        flag = "--allow-change" if keys else "--restretch-schedule"
        raise CLIError(f"{flag} applies to --resume RUN_DIR only; a new run takes any settings directly")
    return keys


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab train``."""
    from cnnlab.train import Trainer, TrainingInterrupted, run_config
    from cnnlab.train.distributed import torchrun_env

    if args.list_recipes:
        from cnnlab.train.recipes import describe_recipes

        print(describe_recipes())
        return 0
    if args.recipe and args.resume:
        raise CLIError(f"--recipe with --resume: {args.resume}/config.json already holds the run's settings; "
                       f"drop --recipe")
    rank, world_size, _ = torchrun_env()
    allow = _allowed_changes(args)
    from_file = args.config and "model" in _load_file(args.config)
    if args.resume:
        out = Path(args.resume)
        if args.out is not None and Path(args.out).resolve() != out.resolve():
            raise CLIError(f"--out {args.out} with --resume {out}: a run continues in its own directory; drop "
                           f"--out (to branch a run, copy its directory first)")
        if out.is_file():
            raise CLIError(f"--resume {out} is a file; it takes a run directory (the --out of cnnlab train)")
        if (out / "config.json").is_file():
            base = run_config(out)
            if args.model and args.model != base["model"]:
                raise CLIError(f"{out} trains {base['model']!r}, not {args.model!r}; drop MODEL when resuming")
            config = _config(args, base)
            trust = args.trust_run_code or args.model == base["model"]  # naming the callable again vouches for it
        elif out.is_dir() and (args.model or from_file):
            config = _config(args)  # stopped before its config.json: the Trainer starts it afresh and says so
            trust = True
        elif out.is_dir():
            raise CLIError(f"{out} has no config.json: its run stopped before set-up finished; start it afresh "
                           f"with the command that started it (MODEL and options, --out {out})")
        else:
            raise CLIError(f"{out} holds no run (no such folder); check the --resume path")
    else:
        if not args.model and not from_file and not args.recipe:
            raise CLIError("give a MODEL (cnnlab list shows them), a --config file that names one, a --recipe "
                           "(--list-recipes shows them), or --resume RUN_DIR")
        config = _config(args)
        if args.out is None and world_size > 1:
            raise CLIError("under torchrun every process must agree on the run directory: pass --out RUN_DIR")
        out = Path(args.out or f"runs/{config.model.replace(':', '_')}-{config.data}-{time.strftime('%Y%m%d-%H%M%S')}")
        trust = True  # the config came from the command line, or from a --config file checked in _config
    try:
        summary = Trainer(config, out, resume=bool(args.resume), progress=not args.quiet,
                          bar=False if in_ci() else None, trust_code=trust, allow_changes=allow,
                          restretch_schedule=args.restretch_schedule).fit()
    except TrainingInterrupted as exc:
        if rank == 0:
            print(f"cnnlab train: {exc}", file=sys.stderr)
        return 128 + exc.signum  # the shell convention for a process ended by a signal
    if rank == 0:
        acc = summary["final_test_acc"]
        best = summary["best_test_acc"]
        print(f"{out}: {summary['step']} steps, test accuracy "
              f"{'n/a' if acc is None else f'{acc:.4f}'} (best {'n/a' if best is None else f'{best:.4f}'})")
    return 0


CONFUSION_UP_TO = 10  # classes; a larger matrix is printed only on request (--confusion)


def format_per_class(result: dict[str, Any]) -> str:
    """Accuracy per class as text, one line each: name, accuracy, correct / images of that class."""
    names = [str(c) for c in result["classes"]]
    width = max(5, *(len(c) for c in names))
    lines = ["accuracy per class", f"  {'class'.ljust(width)}  accuracy  correct / images"]
    for i, (name, acc) in enumerate(zip(names, result["per_class_accuracy"])):
        row = result["confusion"][i]
        text = "       -" if acc is None else f"{acc:8.4f}"
        lines.append(f"  {name.ljust(width)}  {text}  {row[i]:>7} / {sum(row)}")
    return "\n".join(lines)


def format_confusion(result: dict[str, Any]) -> str:
    """The confusion matrix as text: rows are true classes, columns predictions."""
    classes = [str(c)[:10] for c in result["classes"]]
    width = max(6, *(len(c) for c in classes), len(str(max(max(r) for r in result["confusion"]))))
    lines = [" " * (width + 1) + " ".join(c.rjust(width) for c in classes)]
    for name, row in zip(classes, result["confusion"]):
        lines.append(name.rjust(width) + " " + " ".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def run_eval(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab eval``."""
    from cnnlab.train import evaluate_run

    run = Path(args.run_dir)
    if not (run / "checkpoints").is_dir():
        raise CLIError(f"{run} is not a run directory (no checkpoints/); give the --out of a cnnlab train run")
    result = evaluate_run(run, args.checkpoint, model=args.model, test_file=args.test_file, data_dir=args.data_dir,
                          trust_code=args.trust_run_code, tta=None if args.tta == "none" else args.tta)
    if args.json:
        print(json.dumps(result))
        return 0
    top5 = result.get("top5_accuracy")
    print(f"{result['checkpoint']} (step {result['step']}): test accuracy {result['accuracy']:.4f} (top-1)"
          f"{'' if top5 is None else f', top-5 {top5:.4f}'}, loss {result['loss']:.4f} on {result['images']} "
          f"images of {result['test_set']}" + (f", test-time augmentation {result['tta']}" if result["tta"] else ""))
    print(format_per_class(result))
    if args.confusion or len(result["classes"]) <= CONFUSION_UP_TO:
        print("confusion matrix (rows: true class, columns: predicted)")
        print(format_confusion(result))
    else:
        print(f"({len(result['classes'])} classes: --confusion prints the confusion matrix)")
    return 0
