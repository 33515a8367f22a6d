"""Side-by-side timing of one experiment: the tutorial's loop, the best plain loop, Lightning's
floor and litnets at several ``task.steps_per_execution``.

All train the same model with the same optimizer, for the same number of epochs, in one
process, and evaluate once per epoch:

* ``tutorial`` — torchvision dataset + ``DataLoader`` + per-sample ``ToTensor``/``Normalize``,
  as seeds 002 and 004 write it (image datasets only): all 60 000 training images, the
  test set evaluated after every epoch;
* ``plain`` — the fastest hand-written loop doing litnets' work exactly: the same training
  split (validation held out), in-memory tensors, shuffled index batches, training loss and
  accuracy summed on the device, the validation split evaluated after every epoch, the test
  split once at the end;
* ``lightning`` — the floor of Lightning's own loop: the smallest LightningModule (manual
  optimization, no logging) over the same batches under ``Trainer(barebones=True)``;
* ``litnets_k1`` … ``litnets_epoch`` — ``litnets.training.train`` on the composed config at
  ``task.steps_per_execution`` 1, 8, 32 and ``epoch``; ``litnets`` — as shipped (``auto``).

On a GPU (``trainer=gpu``) three rows are added (``gpu_competitors``): ``plain_graph``, the
plain loop with its step captured in a CUDA graph (the floor: the recipe of
``task.cuda_graph`` without a Lightning module around it), ``litnets_graph``
(``task.cuda_graph=true``) and ``litnets_compile`` (``compile=true``, torch.compile's
alternative to a captured graph).

The rows are interleaved, each round starting one row later (``round_order``), and the
whole round repeated (``repeats``), since these machines are noisy; each row reports its
fastest and its median epoch (first epochs of a round, warm-up, apart) and its median
whole run.
"""

from __future__ import annotations

import copy
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from litnets import build, training
from litnets.data.mnist import FILES, MNISTDataModule
from litnets.errors import ConfigError
from litnets.quiet import quiet_lightning
from litnets.signatures import PositiveInt, check_options
from litnets.tasks import graphs


@dataclass
class Timing:
    """One row, over all repeats: every epoch's seconds and every whole run's."""

    name: str
    first_epochs: list[float] = field(default_factory=list)
    """Each round's first epoch (warm-up, compilation), apart from the steady ones."""
    steady_epochs: list[float] = field(default_factory=list)
    round_fastest: list[float] = field(default_factory=list)
    """Each round's fastest steady epoch: rounds interleave the rows, so a row's ratio to
    another within a round is taken under the same load."""
    totals: list[float] = field(default_factory=list)
    samples_per_epoch: int = 0
    test_acc: float | None = None
    latest: str = ""
    """The last round's figures, printed as it ends: a benchmark cut short (a GPU lent for
    minutes) still leaves what it measured in its log."""

    def add(self, epoch_seconds: list[float], total: float) -> None:
        self.latest = f"epochs {' '.join(f'{s:.3f}' for s in epoch_seconds)} s, run {total:.2f} s"
        self.first_epochs.append(epoch_seconds[0])
        self.steady_epochs.extend(epoch_seconds[1:] or epoch_seconds)
        self.round_fastest.append(min(epoch_seconds[1:] or epoch_seconds))
        self.totals.append(total)

    @property
    def fastest_epoch_s(self) -> float:
        return min(self.steady_epochs)

    def row(self) -> dict[str, Any]:
        median = statistics.median
        values = {
            "fastest_epoch_s": self.fastest_epoch_s,
            "median_epoch_s": median(self.steady_epochs),
            "first_epoch_s": median(self.first_epochs),
            "total_s": median(self.totals),
            "samples_per_epoch": self.samples_per_epoch,
            "samples_per_s": round(self.samples_per_epoch / self.fastest_epoch_s),
            "test_acc": self.test_acc,
            "repeats": len(self.totals),
        }
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def _device(cfg: DictConfig) -> torch.device:
    build.check_accelerator(cfg.trainer.accelerator)
    wanted = str(cfg.trainer.accelerator)
    if wanted in {"gpu", "cuda"} or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _hand_written_loop(
    timing: Timing,
    cfg: DictConfig,
    epochs: int,
    train_batches: Callable[[], Batches],
    eval_batches: Callable[[], Batches],
    test_batches: Callable[[], Batches] | None,
    datamodule: MNISTDataModule,
    device: torch.device,
    *,
    training_statistics: bool,
    graphed: bool = False,
) -> None:
    """The loop every tutorial writes: step, then evaluate once per epoch (and test at the end).

    ``training_statistics``: also sum the training loss and correct predictions on the
    device and read them once an epoch, as litnets does for ``train/loss`` and ``train/acc``.
    ``graphed``: replay the step from a CUDA graph (``graphs.GraphedStep``, no task around it).
    """
    L.seed_everything(cfg.seed, verbose=False)
    model = build.build_model(cfg, datamodule, "classification").to(device)
    optimizer = build.instantiate_node(cfg.optimizer, "optimizer")(model.parameters())

    def accuracy(batches: Batches) -> float:
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in batches:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum()
                total += len(y)
        return (correct / total).item()

    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        output = model(x)
        loss = F.cross_entropy(output, y)
        if training_statistics:
            loss_sum.add_(loss.detach() * len(y))
            correct.add_((output.detach().argmax(1) == y).sum())
        loss.backward()
        optimizer.step()

    if graphed:  # the same capture recipe as task.cuda_graph, around the plain step
        graphs.make_capturable(optimizer, device)
        graphed_step = graphs.GraphedStep(step)

        def train_step(x: torch.Tensor, y: torch.Tensor) -> None:
            graphed_step(x, y, lambda: step(x, y))
    else:
        train_step = step
    started = time.perf_counter()
    seconds = []
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        loss_sum.zero_()  # in place: a captured step keeps adding to these very tensors
        correct.zero_()
        for x, y in train_batches():
            train_step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
        if training_statistics:  # one read an epoch, as litnets reads train/loss and train/acc
            torch.stack(
                [loss_sum / timing.samples_per_epoch, correct / timing.samples_per_epoch]
            ).tolist()
        timing.test_acc = accuracy(eval_batches())  # .item() waits for the device
        seconds.append(time.perf_counter() - epoch_start)
    if test_batches is not None:
        timing.test_acc = accuracy(test_batches())
    timing.add(seconds, time.perf_counter() - started)


def tutorial_loop(timing: Timing, cfg: DictConfig, epochs: int, device: torch.device) -> None:
    """torchvision ``MNIST`` + ``DataLoader`` with per-sample transforms (seed 002)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    datamodule = build.build_datamodule(cfg)
    if not isinstance(datamodule, MNISTDataModule):
        raise ConfigError("the tutorial-style loop reads MNIST-format data only")
    datamodule.check_available()
    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize([datamodule.mean], [datamodule.std])]
    )
    dataset_class = {"MNIST": datasets.MNIST, "FashionMNIST": datasets.FashionMNIST}[
        datamodule.folder
    ]
    with tempfile.TemporaryDirectory() as root:
        # torchvision reads extracted files from <root>/<folder>/raw: give it a private copy.
        raw = Path(root) / datamodule.folder / "raw"
        raw.mkdir(parents=True)
        for name in (n for pair in FILES.values() for n in pair):
            source = datamodule.locate(name)
            if source.suffix == ".gz":
                with gzip.open(source) as packed:
                    (raw / name).write_bytes(packed.read())
            else:
                (raw / name).symlink_to(source.resolve())
        train_set = dataset_class(root, train=True, transform=transform)
        test_set = dataset_class(root, train=False, transform=transform)
        generator = torch.Generator().manual_seed(cfg.seed)
        train_loader = DataLoader(train_set, cfg.data.batch_size, shuffle=True, generator=generator)
        test_loader = DataLoader(test_set, cfg.data.eval_batch_size, shuffle=False)
        timing.samples_per_epoch = len(train_set)
        _hand_written_loop(
            timing, cfg, epochs, lambda: train_loader, lambda: test_loader, None, datamodule,
            device, training_statistics=False,
        )  # fmt: skip


def _in_memory(cfg: DictConfig, device: torch.device) -> MNISTDataModule:
    """litnets' own splits (the same training and validation samples), on ``device``."""
    datamodule = build.build_datamodule(cfg)
    datamodule.setup("fit")
    datamodule.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in datamodule.splits.items()}
    return datamodule


def plain_loop(
    timing: Timing, cfg: DictConfig, epochs: int, device: torch.device, *, graphed: bool = False
) -> None:
    """In-memory tensors on the device, one shuffled index vector per epoch.

    The inputs are encoded once, before the clock starts, and batches are gathered with
    ``index_select`` (a third of ``x[index]``'s time for these rows): the fastest a
    hand-written loop can batch them. litnets encodes each gathered block instead
    (``encodes_batches``), a cost its rows include.
    """
    datamodule = _in_memory(cfg, device)
    splits = {
        name: datamodule.sample(name, datamodule.num_samples(name)) for name in datamodule.splits
    }
    x_train, y_train = splits["train"]
    batch, eval_batch = cfg.data.batch_size, cfg.data.eval_batch_size

    def train_batches():
        order = torch.randperm(len(x_train), device=device)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            yield x_train.index_select(0, index), y_train.index_select(0, index)

    def in_order(split: str):
        x, y = splits[split]
        for start in range(0, len(x), eval_batch):
            yield x[start : start + eval_batch], y[start : start + eval_batch]

    timing.samples_per_epoch = len(x_train)
    _hand_written_loop(
        timing, cfg, epochs, train_batches, lambda: in_order("val"), lambda: in_order("test"),
        datamodule, device, training_statistics=True, graphed=graphed,
    )  # fmt: skip


class _FloorModule(L.LightningModule):
    """The least a LightningModule does: the step, validation accuracy, nothing logged."""

    def __init__(self, model: torch.nn.Module, optimizer: Callable[..., Any]) -> None:
        super().__init__()
        self.model, self.optimizer_factory = model, optimizer
        self.automatic_optimization = False
        self.correct = self.seen = 0
        self.epoch_seconds: list[float] = []

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.correct += (self.model(x).argmax(1) == y).sum()
        self.seen += len(y)

    def on_train_epoch_start(self) -> None:
        self._started = time.perf_counter()

    def on_train_epoch_end(self) -> None:  # validation has run: the epoch is complete
        self.accuracy = float(self.correct / self.seen)
        self.correct = self.seen = 0
        self.epoch_seconds.append(time.perf_counter() - self._started)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.parameters())


def lightning_floor(timing: Timing, cfg: DictConfig, epochs: int, device: torch.device) -> None:
    """``Trainer(barebones=True)`` over the smallest module and litnets' own batches."""
    datamodule = _in_memory(cfg, device)
    L.seed_everything(cfg.seed, verbose=False)
    model = build.build_model(cfg, datamodule, "classification")
    module = _FloorModule(model, build.instantiate_node(cfg.optimizer, "optimizer"))
    trainer = L.Trainer(
        barebones=True, max_epochs=epochs, accelerator=device.type, devices=1,
        num_sanity_val_steps=0,
    )  # fmt: skip
    started = time.perf_counter()
    with quiet_lightning():
        trainer.fit(module, datamodule=datamodule)
    timing.samples_per_epoch = datamodule.num_samples("train")
    timing.test_acc = module.accuracy  # validation accuracy: this row has no test pass
    timing.add(module.epoch_seconds, time.perf_counter() - started)


class _EpochSeconds(L.Callback):
    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = list(pl_module.epoch_seconds)


def litnets_pipeline(
    timing: Timing, cfg: DictConfig, epochs: int, device: torch.device, *,
    steps_per_execution: int | str, settings: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """The real ``train`` function, each round in its own run dir under the benchmark's."""
    cfg = copy.deepcopy(cfg)
    output_dir = Path(cfg.paths.output_dir) / "runs" / f"{timing.name}-{len(timing.totals)}"
    for key, value in {
        "trainer.max_epochs": epochs,
        "pictures": False,
        "task.steps_per_execution": steps_per_execution,
        "paths.output_dir": str(output_dir),
        **(settings or {}),
    }.items():
        OmegaConf.update(cfg, key, value)
    seconds = _EpochSeconds()
    started = time.perf_counter()
    summary = training.train(cfg, extra_callbacks=[seconds])
    timing.add(seconds.seconds, time.perf_counter() - started)
    timing.samples_per_epoch = summary["train_samples"]
    timing.test_acc = summary.get("test", {}).get("test/acc")


LITNETS_ROWS = {"litnets_k1": 1, "litnets_k8": 8, "litnets_k32": 32, "litnets_epoch": "epoch"}
LITNETS_ROWS["litnets"] = "auto"
COMPETITORS: dict[str, Callable[[Timing, DictConfig, int, torch.device], None]] = {
    "tutorial": tutorial_loop,
    "plain": plain_loop,
    "lightning": lightning_floor,
    **{name: partial(litnets_pipeline, steps_per_execution=k) for name, k in LITNETS_ROWS.items()},
    "plain_graph": partial(plain_loop, graphed=True),
    "litnets_graph": partial(
        litnets_pipeline, steps_per_execution="auto", settings={"task.cuda_graph": True}
    ),
    "litnets_compile": partial(
        litnets_pipeline, steps_per_execution="auto", settings={"compile": True}
    ),
}
GRAPH_ROWS = ("plain_graph", "litnets_graph")
"""Rows that capture CUDA graphs: a GPU's only."""


STARTUP_PROBE = """
import sys, time
started = time.perf_counter()
import torch, lightning
print("import", time.perf_counter() - started, flush=True)
from litnets import cli
cli.STARTED_AT = started
sys.exit(cli.main(sys.argv[1:]))
"""
"""A fresh interpreter that imports torch and Lightning, timed, then runs ``litnets ...``
with its start-up clock set before that import."""


def compile_like_pip() -> bool:
    """Byte-compile litnets as ``pip install`` does; whether all of it is compiled now.

    torch and Lightning run from the bytecode pip wrote when it installed them. An editable
    checkout, where ``PYTHONDONTWRITEBYTECODE`` is set (as on these machines), would instead
    compile litnets' ≈ 5000 imported lines on every start (≈ 0.03 s), which is the
    environment's cost, not litnets'. Python writes these files itself wherever that
    variable is unset; a read-only install is measured as it is.
    """
    import compileall

    import litnets

    return bool(compileall.compile_dir(Path(litnets.__file__).parent, quiet=2))


def round_order(names: list[str], round_: int) -> list[str]:
    """The rows of round ``round_`` (from 1): each round starts one row later.

    A row that always ran right after the same one (the tutorial's loader and its worker
    processes, say) would carry that row's after-effects in every figure; rotated, each
    row follows each other row once every ``len(names)`` rounds.
    """
    shift = (round_ - 1) % len(names)
    return names[shift:] + names[:shift]


def startup_seconds(overrides: list[str], log_dir: str) -> tuple[float, float]:
    """(``import torch, lightning``, litnets until its first training step), in seconds.

    Both are measured in one fresh interpreter, so nothing is cached by this process and
    the pair shares one moment's load: the import alone took 3.8-9.7 s on these machines
    within an hour, so only a pair's own ratio means anything. The import is done first,
    then the run imports what else it needs, composes, loads the data and starts training;
    the start-up it reports counts from before the import, as a plain ``litnets train``'s
    does.
    """
    result = subprocess.run(
        [sys.executable, "-c", STARTUP_PROBE, "train", *overrides, "trainer.max_steps=1",
         "pictures=false", "test_after_fit=false", "logger=none", f"paths.log_dir={log_dir}"],
        capture_output=True, text=True,
    )  # fmt: skip
    imported, startup = None, None
    for line in result.stdout.splitlines():
        if line.startswith("import "):
            imported = float(line.split()[1])
        elif line.strip().startswith("run dir "):  # its metrics.json has ms, the line 10 ms
            metrics = Path(line.strip().removeprefix("run dir").strip()) / "metrics.json"
            if metrics.is_file():
                startup = json.loads(metrics.read_text()).get("startup_s")
    if imported is not None and startup is not None:
        return imported, float(startup)
    raise RuntimeError(f"the startup run failed:\n{result.stderr[-2000:]}")


@dataclass(frozen=True)
class BenchmarkOptions(training.RunOptions):
    """``conf/benchmark.yaml``'s own top-level keys, typed as train's are: ``epochs=0``
    failed deep in the timing code with an ``IndexError``."""

    epochs: PositiveInt
    repeats: PositiveInt
    competitors: list[str]
    gpu_competitors: list[str]
    measure_startup: bool


def benchmark(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Run the competitors, interleaved, ``repeats`` rounds; ``overrides`` (the command line)
    also drive the start-up run."""
    check_options(cfg, BenchmarkOptions)
    device = _device(cfg)
    epochs, repeats = int(cfg.epochs), int(cfg.repeats)
    names = list(cfg.competitors)
    if device.type == "cuda":
        names += [name for name in cfg.get("gpu_competitors", []) if name not in names]
    unknown = [name for name in names if name not in COMPETITORS]
    if unknown:
        raise ConfigError(
            f"unknown competitor(s) {', '.join(map(str, unknown))}: choose from "
            f"{', '.join(COMPETITORS)}"
        )
    if device.type != graphs.BACKEND.device_type and (
        graphed := [name for name in names if name in GRAPH_ROWS]
    ):
        raise ConfigError(f"{', '.join(graphed)} capture CUDA graphs: run with trainer=gpu")
    timings = {name: Timing(name) for name in names}
    for round_ in range(1, repeats + 1):
        for name in round_order(names, round_):
            timing = timings[name]
            print(f"litnets benchmark: round {round_}/{repeats}: {name} ({epochs} epochs on "
                  f"{device.type})", flush=True)  # fmt: skip
            COMPETITORS[name](timing, cfg, epochs, device)
            print(f"litnets benchmark: {name}: {timing.latest}", flush=True)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name(),
        "epochs": epochs,
        "repeats": repeats,
        "runs": {name: timing.row() for name, timing in timings.items()},
    }
    if cfg.measure_startup:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        own = {"epochs", "repeats", "competitors", "gpu_competitors", "measure_startup"}
        parsed = OverridesParser.create().parse_overrides(overrides)
        train_overrides = [o.input_line for o in parsed if o.key_or_group not in own]
        if not any(o.key_or_group == "experiment" for o in parsed):  # the benchmark's default
            train_overrides.insert(0, f"experiment={cfg.experiment_name}")
        log_dir = str(Path(cfg.paths.output_dir) / "startup")
        byte_compiled = compile_like_pip()
        pairs = []  # ``repeats`` of them: these machines are noisy
        for round_ in range(1, repeats + 1):
            print(f"litnets benchmark: start-up {round_}/{repeats}", flush=True)
            bare, ours = startup_seconds(train_overrides, log_dir)
            pairs.append((bare, ours))
            print(f"litnets benchmark: start-up: import {bare:.2f} s, litnets {ours:.2f} s "
                  f"({ours / bare:.3f}×)", flush=True)  # fmt: skip
        median = statistics.median
        report["startup"] = {
            "import_torch_lightning_s": round(median(bare for bare, _ in pairs), 3),
            "litnets_to_first_step_s": round(median(ours for _, ours in pairs), 3),
            "ratio": round(median(ours / bare for bare, ours in pairs), 3),
            "ratios": [round(ours / bare, 3) for bare, ours in pairs],
            "bytecode": byte_compiled,
        }
    report["ratios"] = ratios(timings)
    return report


def ratios(timings: dict[str, Timing]) -> dict[str, float]:
    """Each litnets row against ``plain`` (fastest epochs overall, and the median of the
    rounds' own ratios) and ``tutorial`` (median runs)."""
    found = {}
    for name, ours in timings.items():
        if not name.startswith("litnets"):
            continue
        if "plain" in timings:
            plain = timings["plain"]
            found[f"{name}_over_plain_epoch"] = round(
                ours.fastest_epoch_s / plain.fastest_epoch_s, 3
            )
            paired = [a / b for a, b in zip(ours.round_fastest, plain.round_fastest, strict=True)]
            found[f"{name}_over_plain_epoch_by_round"] = round(statistics.median(paired), 3)
        if "tutorial" in timings:
            tutorial = statistics.median(timings["tutorial"].totals)
            found[f"{name}_over_tutorial_run"] = round(statistics.median(ours.totals) / tutorial, 3)
    return found


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return f"CPU ({torch.get_num_threads()} threads)"


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"device: {report['device']}, {report['epochs']} epochs x {report['repeats']} rounds",
        f"{'':15}{'fastest':>9}{'median':>9}{'run (s)':>9}{'samples/s':>11}{'acc':>8}",
    ]
    for name, row in report["runs"].items():
        acc = f"{row['test_acc']:.4f}" if row["test_acc"] is not None else "-"
        lines.append(
            f"{name:15}{row['fastest_epoch_s']:>9.3f}{row['median_epoch_s']:>9.3f}"
            f"{row['total_s']:>9.2f}{row['samples_per_s']:>11}{acc:>8}"
        )
    lines += [f"{key}: {value}" for key, value in report["ratios"].items()]
    if "startup" in report:
        s = report["startup"]
        lines.append(
            f"start-up: import torch+lightning {s['import_torch_lightning_s']:.2f} s, "
            f"litnets to first step {s['litnets_to_first_step_s']:.2f} s (medians; ratio "
            f"{s['ratio']}, the median of {s['ratios']}; litnets "
            f"{'byte-compiled, as pip installs it' if s['bytecode'] else 'partly from source'})"
        )
    return "\n".join(lines)
