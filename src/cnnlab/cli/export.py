"""``cnnlab export``: a trained run's network as a safetensors state dict or an ONNX graph (``cnnlab.train.export``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export", help="write a run's trained network as safetensors weights or an ONNX graph",
        description="Export the best (or last) checkpoint's network of a run directory. safetensors: its state "
                    "dict, which model.load_state_dict(safetensors.torch.load_file(FILE)) loads into "
                    "cnnlab.create_model(<the run's model and options>). onnx: the network in eval mode through "
                    "torch.onnx (needs pip install 'cnnlab[onnx]'), input 'images' (N, C, H, W, normalised as in "
                    "training), output 'logits'. Both files carry the model name, options, classes and mean/std "
                    "as metadata; a run that kept an EMA average exports the average.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (the --out of cnnlab train)")
    p.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors")
    p.add_argument("--which", "--checkpoint", dest="which", choices=("best", "last"), default="best",
                   help="which checkpoint (default best; a run without one falls back to last)")
    p.add_argument("--out", metavar="FILE", help="file to write (default RUN_DIR's name-WHICH.FORMAT here)")
    p.add_argument("--model", help="build this network (registry name or package.module:callable) with the "
                                   "run's options instead of the one its checkpoint names")
    p.add_argument("--trust-run-code", action="store_true",
                   help="import the package.module:callable the checkpoint names (only for runs you trust)")
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``cnnlab export``."""
    from cnnlab.train.export import export_run

    run = Path(args.run_dir)
    if not (run / "checkpoints").is_dir():
        raise CLIError(f"{run} is not a run directory (no checkpoints/); give the --out of a cnnlab train run")
    out, info = export_run(run, args.format, args.out, which=args.which, model=args.model,
                           trust_code=args.trust_run_code)
    shape = "x".join(map(str, info.image_shape)) if info.image_shape else "CxHxW"
    mean, std = (", ".join(f"{v:.4f}" for v in values) for values in (info.mean, info.std))
    print(f"{out}: {info.model} ({info.num_classes} classes) from {info.checkpoint}, step {info.step}"
          f"{', EMA average' if info.ema else ''}; input N x {shape} normalised with mean ({mean}), std ({std})")
    return 0
