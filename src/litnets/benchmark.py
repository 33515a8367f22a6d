"""Side-by-side timing of one experiment: the tutorial's loop, the best plain loop, litnets.

All three train the same model with the same optimizer, for the same number of epochs,
in one process, and evaluate once per epoch:

* ``tutorial`` — torchvision dataset + ``DataLoader`` + per-sample ``ToTensor``/``Normalize``,
  as seeds 002 and 004 write it (image datasets only): all 60 000 training images, the
  test set evaluated after every epoch;
* ``plain`` — the fastest hand-written loop doing litnets' work exactly: the same training
  split (validation held out), in-memory tensors, shuffled index batches, the validation
  split evaluated after every epoch, the test split once at the end;
* ``litnets`` — ``litnets.training.train`` on the composed config, validation and test included.

So ``plain`` and ``litnets`` run the same number of steps and evaluations per epoch, and
their epoch-time ratio is the framework's cost alone.
"""

from __future__ import annotations

import copy
import gzip
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from litnets import build, training
from litnets.data.mnist import FILES, MNISTDataModule
from litnets.errors import ConfigError
from litnets.tasks.base import epoch_time


@dataclass
class Timing:
    name: str
    first_epoch_s: float = 0.0
    steady_epoch_s: float = 0.0
    """Median epoch time after the first (warm-up) epoch."""
    total_s: float = 0.0
    samples_per_epoch: int = 0
    test_acc: float | None = None

    def set_epochs(self, times: dict[str, float]) -> None:
        """From ``epoch_time``'s summary: the same definition litnets runs report."""
        self.first_epoch_s, self.steady_epoch_s = times["first"], times["steady"]

    def row(self) -> dict[str, Any]:
        rounded = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return {**rounded, "samples_per_s": round(self.samples_per_epoch / self.steady_epoch_s)}


def _device(cfg: DictConfig) -> torch.device:
    build.check_accelerator(cfg.trainer.accelerator)
    wanted = str(cfg.trainer.accelerator)
    if wanted in {"gpu", "cuda"} or (wanted == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _hand_written_loop(
    name: str,
    cfg: DictConfig,
    epochs: int,
    train_batches: Callable[[], Batches],
    eval_batches: Callable[[], Batches],
    test_batches: Callable[[], Batches] | None,
    num_samples: int,
    datamodule: MNISTDataModule,
    device: torch.device,
) -> Timing:
    """The loop every tutorial writes: step, then evaluate once per epoch (and test at the end)."""
    timing = Timing(name, samples_per_epoch=num_samples)
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

    started = time.perf_counter()
    seconds = []
    for _ in range(epochs):
        epoch_start = time.perf_counter()
        model.train()
        for x, y in train_batches():
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        timing.test_acc = accuracy(eval_batches())  # .item() waits for the device
        seconds.append(time.perf_counter() - epoch_start)
    if test_batches is not None:
        timing.test_acc = accuracy(test_batches())
    timing.total_s = time.perf_counter() - started
    timing.set_epochs(epoch_time(seconds))
    return timing


def tutorial_loop(cfg: DictConfig, epochs: int, device: torch.device) -> Timing:
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
        return _hand_written_loop(
            "tutorial", cfg, epochs, lambda: train_loader, lambda: test_loader, None,
            len(train_set), datamodule, device,
        )  # fmt: skip


def plain_loop(cfg: DictConfig, epochs: int, device: torch.device) -> Timing:
    """In-memory tensors on the device, one shuffled index vector per epoch."""
    datamodule = build.build_datamodule(cfg)
    datamodule.setup("fit")  # litnets' own splits: the same training and validation samples
    x_train, y_train = (t.to(device) for t in datamodule.splits["train"])
    batch, eval_batch = cfg.data.batch_size, cfg.data.eval_batch_size

    def train_batches():
        order = torch.randperm(len(x_train), device=device)
        for start in range(0, len(order), batch):
            index = order[start : start + batch]
            yield x_train[index], y_train[index]

    def in_order(split: str):
        x, y = (t.to(device) for t in datamodule.splits[split])
        for start in range(0, len(x), eval_batch):
            yield x[start : start + eval_batch], y[start : start + eval_batch]

    return _hand_written_loop(
        "plain", cfg, epochs, train_batches, lambda: in_order("val"), lambda: in_order("test"),
        len(x_train), datamodule, device,
    )  # fmt: skip


def litnets_pipeline(cfg: DictConfig, epochs: int) -> Timing:
    """The real ``train`` function; epoch times are the ones every run reports."""
    cfg = copy.deepcopy(cfg)
    OmegaConf.update(cfg, "trainer.max_epochs", epochs)
    OmegaConf.update(cfg, "pictures", False)
    timing = Timing("litnets")
    started = time.perf_counter()
    summary = training.train(cfg)
    timing.total_s = time.perf_counter() - started
    timing.set_epochs(summary["epoch_time_s"])
    timing.samples_per_epoch = summary["train_samples"]
    timing.test_acc = summary.get("test", {}).get("test/acc")
    return timing


def startup_seconds(overrides: list[str], log_dir: str) -> tuple[float, float]:
    """(bare ``import torch, lightning``, litnets until its first training step), in seconds.

    Both are measured in fresh interpreters, so nothing is cached by this process.
    """
    bare = subprocess.run(
        [sys.executable, "-c", "import time; t = time.perf_counter(); import torch, lightning; "
         "print(time.perf_counter() - t)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "litnets", "train", *overrides, "trainer.max_steps=1", "pictures=false",
         "test_after_fit=false", "logger=none", f"paths.log_dir={log_dir}"],
        capture_output=True, text=True,
    )  # fmt: skip
    for line in result.stdout.splitlines():
        if line.strip().startswith("startup"):
            return float(bare.stdout.strip()), float(line.split()[1])
    raise RuntimeError(f"the startup run failed:\n{result.stderr[-2000:]}")


def benchmark(cfg: DictConfig, overrides: list[str]) -> dict[str, Any]:
    """Run the competitors; ``overrides`` (the command line) also drive the start-up run."""
    device = _device(cfg)
    epochs = int(cfg.epochs)
    timings: dict[str, Timing] = {}
    for name in cfg.competitors:
        print(f"litnets benchmark: {name} ({epochs} epochs on {device.type})", flush=True)
        if name == "tutorial":
            timings[name] = tutorial_loop(cfg, epochs, device)
        elif name == "plain":
            timings[name] = plain_loop(cfg, epochs, device)
        elif name == "litnets":
            timings[name] = litnets_pipeline(cfg, epochs)
        else:
            raise ConfigError(f"unknown competitor {name!r}: use tutorial, plain, litnets")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else _cpu_name(),
        "epochs": epochs,
        "runs": {name: timing.row() for name, timing in timings.items()},
    }
    if cfg.measure_startup:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        own = {"epochs", "competitors", "measure_startup"}  # the benchmark's keys, not train's
        parsed = OverridesParser.create().parse_overrides(overrides)
        train_overrides = [o.input_line for o in parsed if o.key_or_group not in own]
        bare, ours = startup_seconds(train_overrides, str(Path(cfg.paths.output_dir) / "startup"))
        report["startup"] = {
            "import_torch_lightning_s": round(bare, 3),
            "litnets_to_first_step_s": round(ours, 3),
            "ratio": round(ours / bare, 3),
        }
    if "litnets" in timings:
        ours = timings["litnets"]
        for other in ("tutorial", "plain"):
            if other in timings:
                report[f"epoch_ratio_litnets_over_{other}"] = round(
                    ours.steady_epoch_s / timings[other].steady_epoch_s, 3
                )
                report[f"total_ratio_litnets_over_{other}"] = round(
                    ours.total_s / timings[other].total_s, 3
                )
    return report


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
        f"device: {report['device']}, {report['epochs']} epochs",
        f"{'':10}{'epoch (s)':>11}{'total (s)':>11}{'samples/s':>11}{'test acc':>10}",
    ]
    for name, row in report["runs"].items():
        acc = f"{row['test_acc']:.4f}" if row["test_acc"] is not None else "-"
        lines.append(
            f"{name:10}{row['steady_epoch_s']:>11.2f}{row['total_s']:>11.2f}{row['samples_per_s']:>11}{acc:>10}"
        )
    for key, value in report.items():
        if key.startswith(("epoch_ratio", "total_ratio")):
            lines.append(f"{key}: {value}")
    if "startup" in report:
        s = report["startup"]
        lines.append(
            f"start-up: import torch+lightning {s['import_torch_lightning_s']:.2f} s, "
            f"litnets to first step {s['litnets_to_first_step_s']:.2f} s (ratio {s['ratio']})"
        )
    return "\n".join(lines)
