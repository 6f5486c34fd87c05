"""``cnnlab transform``: apply design transforms to a zoo model, print what they changed and bought."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cnnlab.cli import CLIError, parse_size

ORDER = "to_residual, to_preactivation, factorize, add_bottleneck, gap_head"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``transform`` subcommand."""
    parser = subparsers.add_parser(
        "transform",
        help="apply design transforms (factorize, bottleneck, residual, pre-activation, GAP head) to a model",
        description="Apply the classic papers' design rules to a model and report parameters, MACs and "
                    f"receptive field before and after. Several transforms run in this order: {ORDER}.",
    )
    parser.add_argument("model", help="zoo model name (see `cnnlab list`) or package.module:callable")
    parser.add_argument("--factorize", choices=("stack3x3", "asymmetric"),
                        help="k x k -> stacked 3x3, or n x n -> 1 x n + n x 1")
    parser.add_argument("--min-kernel", type=int, default=None,
                        help="smallest kernel to factorise (default 5), or to reduce with --bottleneck (default 3)")
    parser.add_argument("--where", default=None,
                        help="only layers whose qualified name matches this glob ('layer1.*') or 're:<regex>' "
                             "(applies to --factorize and --bottleneck)")
    parser.add_argument("--bottleneck", type=int, metavar="R", default=None,
                        help="put a 1x1 reduction to C_in / R channels before each expensive convolution")
    parser.add_argument("--residual", nargs="?", const="A", choices=("A", "B"), default=None,
                        help="add shortcuts to a plain network (option A by default, or B) where shapes change")
    parser.add_argument("--preact", action="store_true", help="post-activation residual units -> pre-activation")
    parser.add_argument("--gap-head", action="store_true",
                        help="replace flatten + fully connected layers by global average pooling + classifier")
    parser.add_argument("--input", default=None, metavar="CxHxW",
                        help="input size for MACs / receptive field / --check (default: the model card's)")
    parser.add_argument("--num-classes", type=int, default=None, help="classifier outputs (default: the card's)")
    parser.add_argument("-o", "--output", default=None, metavar="PATH",
                        help="save the transformed weights to PATH (.safetensors, or .pt: a plain state dict) and "
                             "the recipe to rebuild it to PATH with .json; the module itself is never pickled "
                             "(loading a pickled module executes code)")
    parser.add_argument("--check", action="store_true",
                        help="run both networks on the same random input and confirm the output shapes agree")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="report format")
    parser.set_defaults(handler=run_transform)


def build_steps(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The transforms the flags ask for, in the fixed order, as recipe steps."""
    steps: list[dict[str, Any]] = []
    if args.residual:
        steps.append({"name": "to_residual", "args": {"shortcut": args.residual}})
    if args.preact:
        steps.append({"name": "to_preactivation", "args": {}})
    kernel = {} if args.min_kernel is None else {"min_kernel": args.min_kernel}
    if args.factorize:
        steps.append({"name": "factorize", "args": {"style": args.factorize, "where": args.where, **kernel}})
    if args.bottleneck is not None:  # with --factorize, --min-kernel is the factorisation's only
        bargs = {"reduction": args.bottleneck, "where": args.where, **({} if args.factorize else kernel)}
        steps.append({"name": "add_bottleneck", "args": bargs})
    if args.gap_head:
        steps.append({"name": "gap_head", "args": {}})
    if not steps:
        raise CLIError("no transform requested: give at least one of --factorize, --bottleneck, --residual, "
                       "--preact, --gap-head")
    if args.where is not None and not (args.factorize or args.bottleneck is not None):
        raise CLIError("--where selects layers for --factorize / --bottleneck; give one of them")
    return steps


def run_transform(args: argparse.Namespace) -> int:
    """Build the model, apply the requested transforms, print the reports; optionally check and save."""
    import torch

    from cnnlab.design.recipe import WEIGHT_SUFFIXES, apply_transforms, save_transformed
    from cnnlab.design.report import compare, resolve_input_size
    from cnnlab.design.rewrite import param_count
    from cnnlab.models import create_model

    steps = build_steps(args)
    if args.output and not args.output.endswith(WEIGHT_SUFFIXES):
        raise CLIError(f"-o {args.output!r}: the file must end in one of {WEIGHT_SUFFIXES} (weights as safetensors "
                       f"or a plain state dict; the module itself is never pickled)")
    options = {} if args.num_classes is None else {"num_classes": args.num_classes}
    model = create_model(args.model, **options)
    size = parse_size(args.input, dims=3) if args.input else resolve_input_size(model, None)
    # transforms only rewrite; each step is measured here, against the model it was applied to
    new_model, reports = model, []
    for step in steps:
        before = new_model
        new_model, (record,) = apply_transforms(before, [step], size)
        reports.append(compare(before, new_model, record, input_size=size))

    if args.format == "json":
        print(json.dumps({"model": args.model, "reports": [r.to_dict() for r in reports]}, indent=2))
    else:
        print(f"{args.model}: {len(reports)} transform(s)")
        for report in reports:
            print(report)
        if len(reports) > 1:
            first, last = reports[0].before, reports[-1].after
            macs = "" if first.macs is None or last.macs is None else f", MACs {first.macs:,} -> {last.macs:,}"
            print(f"overall: params {first.params:,} -> {last.params:,}{macs}")

    status = 0
    if args.check:
        if size is None:
            raise CLIError("--check needs an input size: give --input CxHxW")
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(1, *size, generator=generator)
        with torch.no_grad():
            out_before = model.eval()(x)
            out_after = new_model.eval()(x)
        same = out_before.shape == out_after.shape
        print(f"check: input {tuple(x.shape)} -> before {tuple(out_before.shape)}, after "
              f"{tuple(out_after.shape)}: {'OK' if same else 'MISMATCH'}")
        status = 0 if same else 1
    if args.output:
        recipe = {"model": args.model, "model_options": options, "transforms": steps,
                  "input_size": list(size) if size else None,
                  "params": param_count(new_model)}
        json_path = save_transformed(new_model, args.output, recipe)
        print(f"saved weights to {args.output} and the recipe to {json_path} "
              f"(rebuild with cnnlab.design.load_transformed)")
    return status
