"""``cnnlab experiment``: list, show, run and report the papers' design claims (cnnlab.experiments)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from cnnlab.cli import CLIError
from cnnlab.cli.train import in_ci


def register(subparsers: Any) -> None:
    """Add the ``experiment`` subcommand and its actions."""
    p = subparsers.add_parser("experiment", help="re-run a classic paper's design claim and report it",
                              description="The classic papers' claims as experiments: list them, show one, run it "
                                          "at a budget (smoke | quick | paper), write its report.")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.add_parser("list", help="every experiment: claim, paper, budgets and their expected time")
    show = actions.add_parser("show", help="the runs, configs and comparisons of one experiment")
    show.add_argument("name")
    run = actions.add_parser("run", help="train an experiment's runs and decide its verdict",
                             description="Train every arm x seed of a budget into --out, then write report.md and "
                                         "report.html there. --resume continues a killed experiment.")
    run.add_argument("name")
    run.add_argument("--budget", default="quick", help="smoke (synthetic, seconds), quick (default) or paper")
    run.add_argument("--data-dir", help="folder with the official CIFAR-10 files (cifar-10-batches-py)")
    run.add_argument("--train-file", help="training images as .npz (x uint8 NHWC, y, classes)")
    run.add_argument("--test-file", help="test images as .npz")
    run.add_argument("--extra-test-file", action="append", default=[], metavar="NPZ",
                     help="also evaluate every final model on this test set (a further column); repeatable")
    run.add_argument("--out", help="experiment directory (default runs/experiments/NAME-BUDGET)")
    run.add_argument("--seeds", type=int, help="seeds per arm (default: the budget's)")
    run.add_argument("--resume", action="store_true", help="continue the experiment in --out; finished runs are kept")
    run.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    run.add_argument("--quiet", action="store_true",
                     help="print no start line, epoch lines or progress bar for the runs (the bar is drawn only on a "
                          "terminal without CI=true)")
    report = actions.add_parser("report", help="(re)write the reports of a finished experiment directory")
    report.add_argument("out")
    report.add_argument("--format", choices=("md", "html", "both"), default="both")
    p.set_defaults(handler=run_experiment_cli, experiment_parser=p)


def run_experiment_cli(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab experiment``."""
    from cnnlab import experiments as ex

    if args.action is None:
        args.experiment_parser.print_help()
        return 2
    if args.action == "list":
        for name in ex.list_experiments():
            e = ex.get_experiment(name)
            budgets = ", ".join(f"{b.name} ({b.minutes or 'seconds'})" for b in e.budgets.values())
            print(f"{name}\n  claim:   {e.claim}\n  paper:   {e.paper}, {e.source}\n  budgets: {budgets}")
        return 0
    if args.action == "show":
        e = ex.get_experiment(args.name)
        print(f"{e.name}: {e.claim}\n{e.paper}, {e.source}\n\narms:")
        for arm in e.arms:
            print(f"  {arm.name:<22} {arm.model} {json.dumps(dict(arm.model_options)) if arm.model_options else ''}"
                  f"{' train ' + json.dumps(dict(arm.train)) if arm.train else ''}")
        print(f"\ntraining (every budget): {json.dumps(dict(e.train))}\n\nbudgets:")
        for b in e.budgets.values():
            arms = ", ".join(a.name for a in e.arms_of(b))
            print(f"  {b.name}: {b.seeds} seed(s) x [{arms}]\n    {json.dumps(dict(b.train))}"
                  + (f"\n    {b.note}" if b.note else "") + (f"\n    expected: {b.minutes}" if b.minutes else ""))
        print("\nthe paper says:")
        for r in e.references:
            print(f"  {r.quantity}: {r.value} ({r.source})")
        return 0
    if args.action == "report":
        formats = ("md", "html") if args.format == "both" else (args.format,)
        for path in ex.write_reports(args.out, formats):
            print(path)
        return 0
    return _run(args, ex)


def _run(args: argparse.Namespace, ex: Any) -> int:
    import torch

    ex.get_experiment(args.name)  # an unknown name fails before anything is loaded
    if args.data_dir and (args.train_file or args.test_file):
        raise CLIError("give --data-dir (official CIFAR-10 files) or --train-file/--test-file (npz), not both")
    if args.threads is not None:
        if args.threads < 1:
            raise CLIError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)  # process-wide: the CLI's to set, and recorded in the environment
    source = ex.DataSource(data_dir=args.data_dir or "data", train_file=args.train_file, test_file=args.test_file,
                           extra_test_files=tuple(args.extra_test_file), synthetic=args.budget == "smoke")
    if args.budget != "smoke" and not (args.data_dir or args.train_file):
        raise CLIError(f"the {args.budget} budget trains on CIFAR-10: give --data-dir (the folder holding "
                       f"cifar-10-batches-py) or --train-file and --test-file (.npz); --budget smoke needs no data")
    command = "cnnlab " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["experiment"] \
        else f"cnnlab experiment run {args.name} --budget {args.budget}"
    from cnnlab.train import TrainingInterrupted

    try:
        result = ex.run(args.name, args.budget, args.out, source=source, seeds=args.seeds, resume=args.resume,
                        command=command, progress=not args.quiet, bar=False if in_ci() else None)
    except TrainingInterrupted as exc:
        out = args.out or f"runs/experiments/{args.name}-{args.budget}"
        print(f"cnnlab experiment: {str(exc).split(':')[0]}: the run saved a checkpoint; continue with cnnlab "
              f"experiment run {args.name} --budget {args.budget} --resume --out {out} (and the same data options)",
              file=sys.stderr)
        return 128 + exc.signum
    if not result.is_main:  # under torchrun, rank 0 speaks for the experiment
        return 0
    print(f"{result.out}: {result.verdict}")
    for c in result.analysis.comparisons:
        print(f"  {c.describe()}")
    print("report: " + ", ".join(str(p) for p in result.reports if p.suffix in (".md", ".html")))
    return 0
