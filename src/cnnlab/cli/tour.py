"""``cnnlab tour``: a fully offline walk through what cnnlab does, every number computed on the spot.

torch and the library are imported when the tour runs, so that ``cnnlab --help`` stays fast."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def _rf(rf: tuple[int, int] | None) -> str:
    return "n/a" if rf is None else f"{rf[0]}x{rf[1]}"


def _section(title: str, out: Callable[[str], None]) -> None:
    out("")
    out(title)
    out("-" * len(title))


def tour_blocks(out: Callable[[str], None]) -> None:
    """The design ideas as blocks, each measured against the layer it replaces."""
    from cnnlab.analysis import analyze
    from cnnlab.blocks import AsymmetricConv, ConvNormAct, ReducedConv, StackedConv
    from cnnlab.design.rewrite import param_count

    _section("1. Design ideas as blocks (C = 64 channels in and out, 28x28 input, no norm)", out)
    c, hw = 64, 28
    plain = {"norm": False, "bias": False, "act": None}
    rows = [
        ("5x5 convolution", ConvNormAct(c, c, 5, **plain), "VGG/Inception-v3: two 3x3 instead",
         StackedConv(c, c, 5, **plain)),
        ("7x7 convolution", ConvNormAct(c, c, 7, **plain), "three stacked 3x3 (VGG Sec. 2.3)",
         StackedConv(c, c, 7, **plain)),
        ("3x3 convolution", ConvNormAct(c, c, 3, **plain), "3x1 then 1x3 (Inception-v3 Sec. 3.2)",
         AsymmetricConv(c, c, 3, **plain)),
        ("7x7 convolution", ConvNormAct(c, c, 7, **plain), "1x7 then 7x1 (Inception-v3 Fig. 6)",
         AsymmetricConv(c, c, 7, **plain)),
        ("192->32 5x5 conv", ConvNormAct(192, 32, 5, **plain), "1x1 reduce to 16 first (GoogLeNet 3a)",
         ReducedConv(192, 32, 16, 5, **plain)),
    ]
    out(f"{'layer':<18} {'params':>9} {'MACs':>12}   {'replacement':<40} {'params':>9} {'MACs':>12} {'ratio':>6}")
    for name, old, how, new in rows:
        cin = old.conv.in_channels
        p_old, p_new = param_count(old), param_count(new)
        m_old, m_new = (analyze(m, (cin, hw, hw)).macs for m in (old, new))
        out(f"{name:<18} {p_old:>9,} {m_old:>12,}   {how:<40} {p_new:>9,} {m_new:>12,} {p_new / p_old:>6.3f}")
    out("Each replacement keeps the receptive field; the ratios are 18/25, 27/49, 6/9, 14/49 and the 1x1")
    out("bottleneck's saving. `cnnlab summary` counts any network this way; `cnnlab lint` finds such savings.")


def tour_zoo(out: Callable[[str], None]) -> None:
    """The zoo: every network counted on the spot and compared with its paper's or reference's count."""
    import torch

    from cnnlab.design.rewrite import param_count
    from cnnlab.models import create_model, list_models, model_card

    names = list_models()
    _section(f"2. The model zoo: {len(names)} networks, built from these blocks (cnnlab models lists them all)", out)
    out(f"{'model':<20} {'input':>9} {'params (built now)':>19} {'reference':>13}  source")
    for name in ("alexnet", "vgg16", "googlenet", "inception_v3", "inception_v4", "resnet50", "resnet56",
                 "preact_resnet1001", "squeezenet1_0"):
        if name not in names:
            continue
        card = model_card(name)
        with torch.device("meta"):  # no memory: the 1001-layer network costs nothing to build
            built = param_count(create_model(name))
        size = "x".join(str(v) for v in card.input_size[1:])
        out(f"{name:<20} {size:>9} {built:>19,} {card.reference.params:>13,}  {card.reference.source.split(';')[0]}")


def tour_costs(out: Callable[[str], None]) -> None:
    """Costs per layer, the way the textbooks count them by hand, and receptive fields through branches."""
    import torch

    from cnnlab.analysis import analyze
    from cnnlab.models import create_model

    _section("3. Costs, counted per layer (cnnlab summary / compare / lint)", out)
    vgg = analyze("vgg16")
    fc6 = vgg.layer("head.fc6")
    out(f"VGG-16: {vgg.params:,} parameters; its first fully connected layer alone has {fc6.params:,} "
        f"(25088 x 4096 + 4096 = {25088 * 4096 + 4096:,}), {fc6.params / vgg.params:.0%} of the network.")
    alex = analyze("alexnet")
    with torch.device("meta"):
        goog = analyze(create_model("googlenet", aux_logits=False).eval())
    # Szegedy et al. 2015 (Sec. 1) claim "12x fewer parameters" than AlexNet; the counted tables give less
    out(f"GoogLeNet vs AlexNet: {alex.params / goog.params:.1f}x fewer parameters ({goog.params:,} vs "
        f"{alex.params:,}; the paper says 12x) and {goog.macs / alex.macs:.1f}x the multiply-adds "
        f"({goog.macs / 1e9:.2f} G vs {alex.macs / 1e9:.2f} G; the paper says 1.5 G).")
    out("  (Szegedy et al. 2015, Going Deeper with Convolutions, arXiv:1409.4842, Sec. 1; every reference count and "
        "its source: docs/references.md)")
    res = analyze("resnet50")
    rf = res.layer("layer4").rf
    out(f"ResNet-50 at 224x224: {res.macs:,} MACs ({res.flops / 1e9:.2f} GFLOPs at 2 per MAC); the receptive "
        f"field of layer4 is {rf.size[0]:.0f}x{rf.size[1]:.0f} pixels with a jump of {rf.jump[0]}.")


def tour_design(out: Callable[[str], None]) -> None:
    """The papers' rules applied as transforms, with what they buy."""
    import torch

    from cnnlab.design import compare, factorize, gap_head
    from cnnlab.models import create_model

    _section("4. Design rules as transforms (cnnlab transform)", out)
    with torch.device("meta"):
        vgg, googlenet = create_model("vgg16"), create_model("googlenet", aux_logits=False)
    report = compare(vgg, *gap_head(vgg))
    out(f"gap_head(vgg16): params {report.before.params:,} -> {report.after.params:,} "
        f"(x{report.after.params / report.before.params:.3f}); global average pooling replaces fc6/fc7.")
    # the nine Inception 5x5 branches; the 7x7/2 stem is not a 5x5 (as StackedConv, its stride would go first)
    report = compare(googlenet, *factorize(googlenet, style="stack3x3", min_kernel=5, where="inception*"))
    out(f"factorize(googlenet, 5x5 -> two 3x3): {len(report.replaced)} layers, MACs {report.before.macs:,} -> "
        f"{report.after.macs:,} (x{report.after.macs / report.before.macs:.3f}), receptive field "
        f"{_rf(report.before.receptive_field)} -> {_rf(report.after.receptive_field)}.")


def tour_next(out: Callable[[str], None]) -> None:
    """Where to go from here."""
    _section("5. Next", out)
    out("cnnlab summary resnet50 --depth 1          per-stage costs and receptive fields (--format html for a page)")
    out("cnnlab compare alexnet googlenet vgg16     totals side by side with ratios")
    out("cnnlab lint vgg16                          the Inception-v3 design principles, checked with numbers")
    out("cnnlab transform plain56 --residual        add shortcuts to a plain network and see what changes")
    out("cnnlab train resnet20 --data cifar10 --data-dir PATH   train with the paper's recipe (local files)")
    out("cnnlab experiment list                     the papers' claims, re-run and reported beside the paper "
        "(docs/results/)")


SECTIONS: list[Callable[[Callable[[str], None]], None]] = [tour_blocks, tour_zoo, tour_costs, tour_design,
                                                           tour_next]


def run_tour(args: argparse.Namespace) -> int:
    print("cnnlab tour: the classic CNN design ideas, counted. Everything below is computed now, offline.")
    for section in SECTIONS:
        section(print)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tour", help="an offline walk through cnnlab: blocks, zoo, costs, transforms")
    parser.set_defaults(handler=run_tour)
