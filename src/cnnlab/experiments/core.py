"""An experiment is data: arms (zoo model x options x training overrides), budgets, the paper's numbers and a
pure function from the runs' metrics to a verdict. ``run_experiment`` trains every arm x seed with the Trainer
into one directory (a run directory per run, ``experiment.json`` for the whole) and resumes where it stopped.

Layout of an experiment directory::

    experiment.json         name, budget, seeds, command, environment, runs (status, wall time), analysis
    entries/<arm>-seed<k>.json  a run's entry in runs; wall_s: the total of wall_s_parts, one per invocation
                            that trained it (so a resumed run's time includes the part before the kill)
    runs/<arm>-seed<k>/     one Trainer run directory per arm and seed
    report.md, report.html  written by cnnlab.experiments.report
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import platform
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab._io import atomic_write, read_jsonl
from cnnlab.data import ArrayDataset, load_dataset
from cnnlab.experiments.verdict import NO_VERDICT, Comparison, mean_std, overall
from cnnlab.train.components import native_cpu_bf16
from cnnlab.train.distributed import Distributed
from cnnlab.train.rundir import run_finished, versions

log = logging.getLogger(__name__)
RECORD = "experiment.json"
RECORD_FORMAT = "cnnlab-experiment/1"


# ---------------------------------------------------------------- declarations
@dataclass(frozen=True)
class Arm:
    """One network compared in an experiment: a zoo name, its options and this arm's training overrides."""

    name: str
    model: str
    model_options: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    train: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass(frozen=True)
class Budget:
    """How much training: TrainConfig overrides, seeds, the arms it runs, and the expected wall time."""

    name: str
    train: Mapping[str, Any]
    seeds: int = 1
    arms: tuple[str, ...] | None = None  # None: every arm
    minutes: str = ""  # expected wall time, with the machine it was measured on
    note: str = ""  # what is scaled down at this budget, said in the report


@dataclass(frozen=True)
class Reference:
    """A number the paper states, with where it says so."""

    quantity: str
    value: str
    source: str


@dataclass(frozen=True)
class Experiment:
    """A paper's claim, the runs that test it, and ``analyse(outcome) -> Analysis``."""

    name: str
    claim: str
    paper: str
    source: str
    arms: tuple[Arm, ...]
    budgets: Mapping[str, Budget]
    analyse: Callable[[Outcome], Analysis]
    references: tuple[Reference, ...] = ()
    train: Mapping[str, Any] = field(default_factory=dict)  # every budget starts from these overrides
    input_size: tuple[int, int, int] = (3, 32, 32)

    def arm(self, name: str) -> Arm:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(f"{self.name} has no arm {name!r}; arms: {', '.join(a.name for a in self.arms)}")

    def arms_of(self, budget: Budget) -> tuple[Arm, ...]:
        return self.arms if budget.arms is None else tuple(self.arm(n) for n in budget.arms)

    def config_values(self, arm: Arm, budget: Budget, seed: int) -> dict[str, Any]:
        """TrainConfig keys of one run: experiment base < budget < arm, then model and seed."""
        return {**self.train, **budget.train, **arm.train, "model": arm.model,
                "model_options": dict(arm.model_options), "seed": seed}


# ---------------------------------------------------------------- outcomes
@dataclass
class RunRecord:
    """What one finished run measured: per-epoch curves and final numbers (accuracies in 0..1)."""

    arm: str
    seed: int
    run_dir: str
    epochs: list[dict[str, Any]]
    test_acc: float | None
    train_acc: float | None
    images_per_s: float | None
    wall_s: float | None
    test_images: int
    train_images: int
    extra_test_acc: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    """Everything an analysis function sees: the runs and the exact costs of every arm."""

    experiment: Experiment
    budget: Budget
    runs: list[RunRecord]
    costs: dict[str, dict[str, Any]]

    def values(self, arm: str, metric: str) -> tuple[float, ...]:
        """``metric`` of every seed of ``arm``: test_acc, train_acc, test_err, train_err, images_per_s, or
        ``epoch<K>:<key>`` (a key of epoch K's record, e.g. ``epoch1:test_acc``)."""
        out = []
        for r in self.runs:
            if r.arm != arm:
                continue
            if metric.startswith("epoch"):
                k, key = metric[len("epoch"):].split(":", 1)
                v = r.epochs[int(k) - 1].get(key) if len(r.epochs) >= int(k) else None
            elif metric in ("test_err", "train_err"):
                v = getattr(r, metric.replace("err", "acc"))
                v = None if v is None else 1 - v
            else:
                v = getattr(r, metric, None)
            if v is not None:
                out.append(float(v))
        return tuple(out)

    def compare(self, claim: str, metric: str, a: str, b: str, expect: str = "greater") -> Comparison:
        """A claim "``a`` beats ``b`` on ``metric``" with the noise of this outcome's test or training set."""
        n = self.test_images if "test" in metric else self.train_images
        return Comparison(claim, metric, a, b, self.values(a, metric), self.values(b, metric), n, expect)

    @property
    def test_images(self) -> int:
        return min((r.test_images for r in self.runs), default=0)

    @property
    def train_images(self) -> int:
        return min((r.train_images for r in self.runs), default=0)


@dataclass
class Analysis:
    """The paper-vs-measured table and the claims decided on this outcome."""

    rows: list[tuple[str, str, str, str]]  # quantity, paper, measured, source / convention
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)


@dataclass
class ExperimentResult:
    """What ``run`` returns: the verdict, the analysis, the runs and where everything is."""

    experiment: Experiment
    budget: Budget
    out: Path
    outcome: Outcome
    analysis: Analysis
    verdict: str
    record: dict[str, Any]
    reports: list[Path] = field(default_factory=list)  # the files write_report wrote
    is_main: bool = True  # under torchrun, only rank 0's result writes the reports

    def __str__(self) -> str:
        return f"{self.experiment.name} ({self.budget.name}): {self.verdict}"


# ---------------------------------------------------------------- environment
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, CPU model, native bf16, GPU, threads and load: recorded with every experiment."""
    return {**versions(), "cpu": cpu_model(), "cpu_count": os.cpu_count(), "native_bf16": native_cpu_bf16(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


# ---------------------------------------------------------------- data
@dataclass(frozen=True)
class DataSource:
    """Where the runs' images come from: an official-format folder, npz files, or synthetic (smoke) tensors."""

    data: str = "cifar10"
    data_dir: str = "data"
    train_file: str | None = None
    test_file: str | None = None
    extra_test_files: tuple[str, ...] = ()  # evaluated after training, as further columns
    synthetic: bool = False

    def config(self) -> dict[str, Any]:
        if self.synthetic:
            return {"data": "npz", "train_file": "<synthetic>", "test_file": "<synthetic>", "download": False}
        if self.train_file or self.test_file:
            if not (self.train_file and self.test_file):
                raise ValueError("give both --train-file and --test-file (npz), or --data-dir for the official files")
            return {"data": "npz", "train_file": self.train_file, "test_file": self.test_file}
        return {"data": self.data, "data_dir": self.data_dir}

    def load(self) -> tuple[ArrayDataset, ArrayDataset]:
        if self.synthetic:
            return synthetic_split(96, 0), synthetic_split(64, 1)
        cfg = self.config()
        return tuple(load_dataset(cfg["data"], split, cfg.get("data_dir", "data"),  # type: ignore[return-value]
                                  file=cfg.get(f"{split}_file"), download=False) for split in ("train", "test"))


def synthetic_split(n: int, seed: int, size: int = 32, classes: int = 10) -> ArrayDataset:
    """Random images whose class shifts one colour channel: learnable in a few steps, for the smoke budget."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 128, (n, size, size, 3)).astype(np.int64)
    x[..., 0] += (y * 12)[:, None, None]
    return ArrayDataset(x.clip(0, 255).astype(np.uint8), y.astype(np.int64),
                        tuple(f"class{i}" for i in range(classes)))


# ---------------------------------------------------------------- costs
def arm_costs(experiment: Experiment, arm: Arm, num_classes: int = 10) -> dict[str, Any]:
    """Exact parameters, MACs (inference), parameters trained (aux heads included) and receptive field."""
    from cnnlab.analysis import analyze
    from cnnlab.design.report import feature_receptive_field
    from cnnlab.models import create_model

    model = create_model(arm.model, num_classes=num_classes, **arm.model_options)
    infer = analyze(model, experiment.input_size, training=False)
    trained = analyze(model, experiment.input_size, training=True)
    rf = feature_receptive_field(infer)
    # in eval mode auxiliary heads do not run: the parameters used at inference are the ones that ran
    return {"model": arm.model, "options": dict(arm.model_options), "params": infer.params - infer.unused_params,
            "trained_params": trained.params, "macs": infer.macs, "train_macs": trained.macs,
            "receptive_field": None if rf is None else rf[0]}


# ---------------------------------------------------------------- running
def _run_name(arm: Arm, seed: int) -> str:
    return f"{arm.name}-seed{seed}"


def _read_run(run_dir: Path, arm: Arm, seed: int, entry: Mapping[str, Any]) -> RunRecord:
    epochs = [{k: v for k, v in record.items() if k != "kind"} for record in read_jsonl(run_dir / "metrics.jsonl")
              if record.get("kind") == "epoch"]
    summary = json.loads((run_dir / "summary.json").read_text())
    last = epochs[-1] if epochs else {}
    speeds = [e["images_per_s"] for e in epochs if e.get("images_per_s")]
    return RunRecord(arm=arm.name, seed=seed, run_dir=str(run_dir), epochs=epochs,
                     test_acc=summary.get("final_test_acc"), train_acc=last.get("train_acc"),
                     images_per_s=statistics.median(speeds) if speeds else None, wall_s=entry.get("wall_s"),
                     test_images=int(entry["test_images"]), train_images=int(entry["train_images"]),
                     extra_test_acc=dict(entry.get("extra_test_acc", {})))


def run_experiment(experiment: Experiment, budget: str = "quick", out: str | Path | None = None, *,
                   source: DataSource | None = None, seeds: int | None = None, resume: bool = False,
                   command: str = "", progress: bool = False, bar: bool | None = None,
                   overrides: Mapping[str, Any] | None = None) -> ExperimentResult:
    """Train every arm x seed of ``budget`` into ``out`` (skipping finished runs when ``resume``) and analyse.

    ``progress`` and ``bar`` go to each run's Trainer: start and epoch lines, and a bar (default: on a terminal).

    Under torchrun the processes share out the runs (run ``i`` goes to rank ``i % world``) and rank 0 writes the
    record; one process runs them all otherwise.
    """
    if budget not in experiment.budgets:
        raise ValueError(f"{experiment.name} has no budget {budget!r}; budgets: {', '.join(experiment.budgets)}")
    plan = experiment.budgets[budget]
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        plan = dataclasses.replace(plan, seeds=seeds)
    source = source or DataSource(synthetic=budget == "smoke")
    if budget == "smoke" and not source.synthetic:
        source = dataclasses.replace(source, synthetic=True)
    if source.synthetic and source.extra_test_files:  # like the train and test files: synthetic images replace them
        source = dataclasses.replace(source, extra_test_files=())
    out = Path(out or f"runs/experiments/{experiment.name}-{budget}")
    # under torchrun the processes share out the runs (each rank trains whole runs alone); runs take hours, so
    # the ranks that finish first wait at the closing barrier for the others
    ranks = Distributed(torch.device("cpu"), timeout=datetime.timedelta(days=7))
    try:
        return _run(experiment, plan, out, source, resume, command, progress, bar, overrides, ranks)
    finally:
        ranks.close()


def _run(experiment: Experiment, plan: Budget, out: Path, source: DataSource, resume: bool, command: str,
         progress: bool, bar: bool | None, overrides: Mapping[str, Any] | None, ranks: Distributed,
         ) -> ExperimentResult:
    from cnnlab.train import Trainer, evaluate_run, from_dict

    record_path = out / RECORD
    record = _open_record(record_path, experiment, plan, source, resume)  # every rank checks before any writes
    ranks.barrier()
    main = ranks.rank == 0
    record["command"] = command or record.get("command") or (
        f"cnnlab.experiments.run({experiment.name!r}, budget={plan.name!r}, out={str(out)!r})")
    record["environment"] = {**environment(), "processes": ranks.world_size}
    train_data, test_data = source.load()
    extra_sets = {Path(f).name: load_dataset("npz", "test", file=f, download=False)
                  for f in source.extra_test_files}
    record["costs"] = {arm.name: arm_costs(experiment, arm, test_data.num_classes or 10)
                       for arm in experiment.arms_of(plan)}
    entries_dir = out / "entries"  # one small JSON per finished run: ranks never write the same file
    if main:
        entries_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(record_path, json.dumps(record, indent=2))
    ranks.barrier()

    plan_runs = [(seed, arm) for seed in range(plan.seeds) for arm in experiment.arms_of(plan)]
    for i, (seed, arm) in enumerate(plan_runs):
        name = _run_name(arm, seed)
        run_dir, entry_path = out / "runs" / name, entries_dir / f"{name}.json"
        if i % ranks.world_size != ranks.rank:
            continue
        entry = json.loads(entry_path.read_text()) if entry_path.is_file() else dict(
            record["runs"].get(name, {"wall_s": 0.0}))  # a record written before entries/ existed
        if entry_path.is_file() and entry.get("status") == "finished" and run_finished(run_dir):
            continue
        config = from_dict({**experiment.config_values(arm, plan, seed), **source.config(), **(overrides or {})})
        if not run_finished(run_dir):
            again = (run_dir / "config.json").is_file()
            if not again and run_dir.exists():  # killed before its config existed: nothing to keep
                shutil.rmtree(run_dir)
            log.info("%s: %s %s", experiment.name, "resuming" if again else "training", name)
            start = time.perf_counter()
            try:
                # this rank trains the whole run alone
                Trainer(config, run_dir, resume=again, train_data=train_data, test_data=test_data,
                        progress=progress, bar=bar, distributed=False).fit()
            finally:  # stopped part-way or not, its time counts: wall_s totals every invocation that trained it
                seconds = time.perf_counter() - start
                entry["wall_s"] = float(entry.get("wall_s") or 0.0) + seconds
                entry["wall_s_parts"] = [*entry.get("wall_s_parts", []), seconds]
                atomic_write(entry_path, json.dumps({**entry, "status": "incomplete"}, indent=2))
        entry.update(arm=arm.name, seed=seed, status="finished", test_images=len(test_data),
                     train_images=min(len(train_data), config.subset or len(train_data)), rank=ranks.rank,
                     extra_test_acc={label: evaluate_run(run_dir, "last", test_data=data)["accuracy"]
                                     for label, data in extra_sets.items()})
        atomic_write(entry_path, json.dumps(entry, indent=2))
    ranks.barrier()

    runs: list[RunRecord] = []
    for seed, arm in plan_runs:
        name = _run_name(arm, seed)
        entry = json.loads((entries_dir / f"{name}.json").read_text())
        record["runs"][name] = entry
        runs.append(_read_run(out / "runs" / name, arm, seed, entry))
    outcome, analysis, verdict = _decide(experiment, plan, runs, record["costs"], source.synthetic)
    record["analysis"] = {"rows": analysis.rows, "claims": [c.describe() for c in analysis.comparisons],
                          "outcomes": [c.outcome for c in analysis.comparisons], "notes": analysis.notes}
    record["verdict"] = verdict
    record["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if main:
        atomic_write(record_path, json.dumps(record, indent=2))
    return ExperimentResult(experiment, plan, out, outcome, analysis, verdict, record, is_main=main)


def _decide(experiment: Experiment, budget: Budget, runs: list[RunRecord], costs: dict[str, dict[str, Any]],
            synthetic: bool) -> tuple[Outcome, Analysis, str]:
    """The outcome of the runs, the experiment's analysis of it, and the verdict (none on synthetic data)."""
    outcome = Outcome(experiment, budget, runs, costs)
    analysis = experiment.analyse(outcome)
    return outcome, analysis, NO_VERDICT if synthetic else overall([c.outcome for c in analysis.comparisons])


def _open_record(path: Path, experiment: Experiment, budget: Budget, source: DataSource,
                 resume: bool) -> dict[str, Any]:
    fresh = {"format": RECORD_FORMAT, "experiment": experiment.name, "budget": budget.name, "seeds": budget.seeds,
             "data": dataclasses.asdict(source), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": {}}
    fresh = json.loads(json.dumps(fresh))  # tuples become lists, as in the stored record
    if not path.is_file():
        if resume and path.parent.exists() and any(path.parent.iterdir()):
            raise FileNotFoundError(f"{path.parent} holds no experiment record ({RECORD}); check the --out path")
        path.parent.mkdir(parents=True, exist_ok=True)
        return fresh
    if not resume:
        raise FileExistsError(f"{path.parent} already holds an experiment; continue it with --resume or choose "
                              f"another --out")
    stored = json.loads(path.read_text())
    for key in ("experiment", "budget", "seeds", "data"):
        if stored.get(key) != fresh[key]:
            raise ValueError(f"{path.parent} ran {key}={stored.get(key)!r}, not {fresh[key]!r}; resume it with the "
                             f"same settings or choose another --out")
    return stored


def read_record(out: str | Path) -> dict[str, Any]:
    """The record (``experiment.json``) of the experiment directory ``out``."""
    path = Path(out) / RECORD
    if not path.is_file():
        raise FileNotFoundError(f"{out} is not an experiment directory (no {RECORD}); give the --out of "
                                f"cnnlab experiment run")
    record = json.loads(path.read_text())
    if record.get("format") != RECORD_FORMAT:
        raise ValueError(f"{path} is not a {RECORD_FORMAT} record (format={record.get('format')!r})")
    return record


def load_result(experiment: Experiment, out: str | Path) -> ExperimentResult:
    """Re-read a finished experiment directory and analyse it again (for ``cnnlab experiment report``)."""
    out = Path(out)
    record = read_record(out)
    if "verdict" not in record:
        raise ValueError(f"the experiment in {out} has not finished; continue it with cnnlab experiment run "
                         f"{experiment.name} --resume --out {out}")
    budget = dataclasses.replace(experiment.budgets[record["budget"]], seeds=int(record["seeds"]))
    runs = []
    for name, entry in record["runs"].items():
        if entry.get("status") != "finished":
            raise ValueError(f"run {name} of {out} has not finished; continue with cnnlab experiment run "
                             f"{experiment.name} --resume --out {out}")
        arm = experiment.arm(entry["arm"])
        runs.append(_read_run(out / "runs" / name, arm, int(entry["seed"]), entry))
    outcome, analysis, verdict = _decide(experiment, budget, runs, record["costs"],
                                         bool(record.get("data", {}).get("synthetic")))
    return ExperimentResult(experiment, budget, out, outcome, analysis, verdict, record)


def pct(value: float | None, digits: int = 2) -> str:
    """0.8731 -> '87.31%'; None -> 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def mean_pct(values: Sequence[float]) -> str:
    """Mean and spread of accuracies as text: '87.31% +/- 0.40 (n=3)'."""
    if not values:
        return "n/a"
    mean, spread = mean_std(values)
    return f"{100 * mean:.2f}% +/- {100 * spread:.2f} (n={len(values)})"
