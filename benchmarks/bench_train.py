"""Training speed: cnnlab's default training step against a plain fp32 PyTorch loop, and the loader's rate.

    python benchmarks/bench_train.py [--model resnet20] [--batch-size 128] [--rounds 5] [--steps 8] [--write]

Both loops run in the same process on the same model architecture. Rounds alternate baseline and candidate
so that a busy neighbour slows both alike; the median of the rounds is reported with the load average
(os.getloadavg) seen during the run. ``--write`` replaces the ``## Training`` section of BENCHMARKS.md.

* baseline: fp32, NCHW-contiguous tensors already in memory, SGD(momentum), cross-entropy; no augmentation.
* candidate: ``Trainer.fit`` with the default TrainConfig (bf16 autocast where available, channels_last),
  including batch assembly, crop + flip augmentation, normalisation, metrics lines and the loss check.
* loader: ``BatchLoader.batch`` alone (gather + pad/crop/flip + normalise), images per second.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data import ArrayDataset, Augment, BatchLoader, channel_stats
from cnnlab.models import create_model
from cnnlab.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def _data(n: int) -> ArrayDataset:
    shared = ROOT.parent / "shared" / "data" / "cifar10_test_first1000.npz"
    if shared.exists():  # real CIFAR-10 images when present; speed does not depend on content
        with np.load(shared) as f:
            x, y = f["x"][:n], f["y"][:n]
    else:
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)
    return ArrayDataset(np.ascontiguousarray(x), y.astype(np.int64), tuple(str(i) for i in range(10)))


def plain_round(model, opt, x, y, steps: int) -> float:
    """Images/s of the plain fp32 loop."""
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * len(y) / (time.perf_counter() - start)


def trainer_round(trainer: Trainer, steps: int) -> float:
    """Images/s of the Trainer's default step (fit over ``steps`` more steps)."""
    start = time.perf_counter()
    trainer.fit(until_step=trainer.step + steps)
    return steps * trainer.config.batch_size / (time.perf_counter() - start)


def loader_rate(data: ArrayDataset, batch_size: int, batches: int = 50) -> float:
    mean, std = channel_stats(data.x)
    loader = BatchLoader(data, batch_size, mean, std, train=True, augment=Augment())
    g = torch.Generator().manual_seed(0)
    order = loader.epoch_order(0)
    loader.batch(order, 0, g)
    start = time.perf_counter()
    for i in range(batches):
        loader.batch(order, i % len(loader), g)
    return batches * batch_size / (time.perf_counter() - start)


def run(model_name: str, batch_size: int, rounds: int, steps: int) -> dict:
    data = _data(1000)
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    mean, std = channel_stats(data.x)
    x = ((torch.from_numpy(data.x[:batch_size]).float() / 255 - torch.tensor(mean)) / torch.tensor(std))
    x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(data.y[:batch_size])
    tmp = tempfile.mkdtemp(prefix="cnnlab-bench-")
    # lr 0.01 keeps random-init training finite; the default schedule otherwise (bf16, channels_last: defaults)
    cfg = TrainConfig(model=model_name, data="npz", batch_size=batch_size, lr=0.01, epochs=1000)
    trainer = Trainer(cfg, Path(tmp) / "run", train_data=data, test_data=data, progress=False)
    plain_round(model, opt, x, y, 2)  # warm-up both (allocator, oneDNN primitive caches)
    trainer_round(trainer, 2)
    loads, plain, cand = [], [], []
    for _ in range(rounds):
        plain.append(plain_round(model, opt, x, y, steps))
        cand.append(trainer_round(trainer, steps))
        loads.append(os.getloadavg()[0])
    return {"model": model_name, "batch": batch_size, "rounds": rounds, "steps": steps,
            "plain": statistics.median(plain), "plain_all": plain, "default": statistics.median(cand),
            "default_all": cand, "ratio": statistics.median(c / p for c, p in zip(cand, plain)),
            "loader": loader_rate(data, batch_size), "load_min": min(loads), "load_max": max(loads),
            "autocast": str(trainer.precision), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}


def markdown(r: dict) -> str:
    when = time.strftime("%Y-%m-%d %H:%M")
    return "\n".join([
        "## Training",
        "",
        f"`python benchmarks/bench_train.py --write` ({when}; torch {r['torch']}, {r['cores']} cores, "
        f"{r['threads']} threads; load average during the run {r['load_min']:.1f}-{r['load_max']:.1f}).",
        f"{r['model']}, batch {r['batch']}, full training step (forward, backward, SGD update); median of "
        f"{r['rounds']} alternating rounds of {r['steps']} steps each.",
        "",
        "| loop | images/s (median) | all rounds |",
        "| --- | ---: | --- |",
        f"| plain fp32 PyTorch loop (NCHW, data ready in memory) | {r['plain']:.0f} | "
        f"{', '.join(f'{v:.0f}' for v in r['plain_all'])} |",
        f"| cnnlab default (`Trainer`, autocast {r['autocast']}, channels_last, with augmentation) | "
        f"{r['default']:.0f} | {', '.join(f'{v:.0f}' for v in r['default_all'])} |",
        "",
        f"Speed-up of the default over the plain loop (median of per-round ratios): **{r['ratio']:.2f}x**.",
        f"Loader alone (`BatchLoader.batch`: gather, pad 4 + crop + flip, normalise): {r['loader']:.0f} images/s, "
        f"{r['loader'] / r['default']:.0f}x what the default step consumes.",
        "",
    ])


def write_section(text: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace (or append) the ``## Training`` section, leaving the other sections alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    lines = old.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Training"), None)
    if start is None:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        new = "".join(lines[:start]) + text + ("\n" + "".join(lines[end:]) if end < len(lines) else "")
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)
    result = run(args.model, args.batch_size, args.rounds, args.steps)
    text = markdown(result)
    print(text)
    if args.write:
        write_section(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
