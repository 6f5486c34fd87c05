"""``cnnlab tour``: a fully offline walk through what cnnlab does, every number computed on the spot."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from cnnlab.blocks import AsymmetricConv, ConvNormAct, ReducedConv, StackedConv


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _macs(module: nn.Module, channels: int, size: int) -> int:
    """Conv and linear multiply-adds of one forward pass, counted with PyTorch's own FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        x = torch.empty(1, channels, size, size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module.to("meta")(x)
    return counter.get_total_flops() // 2


def _section(title: str, out: Callable[[str], None]) -> None:
    out("")
    out(title)
    out("-" * len(title))


def tour_blocks(out: Callable[[str], None]) -> None:
    """The design ideas as blocks, each measured against the layer it replaces."""
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
        p_old, p_new = _params(old), _params(new)
        m_old, m_new = _macs(old, cin, hw), _macs(new, cin, hw)
        out(f"{name:<18} {p_old:>9,} {m_old:>12,}   {how:<40} {p_new:>9,} {m_new:>12,} {p_new / p_old:>6.3f}")
    out("Each replacement keeps the receptive field; the ratios are 18/25, 27/49, 6/9, 14/49 and the 1x1")
    out("bottleneck's saving. `cnnlab summary` counts any network this way; `cnnlab lint` finds such savings.")


SECTIONS: list[Callable[[Callable[[str], None]], None]] = [tour_blocks]


def run_tour(args: argparse.Namespace) -> int:
    print("cnnlab tour: the classic CNN design ideas, counted. Everything below is computed now, offline.")
    for section in SECTIONS:
        section(print)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tour", help="an offline walk through cnnlab: blocks, zoo, costs, transforms")
    parser.set_defaults(handler=run_tour)
