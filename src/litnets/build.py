"""Build a run's pieces from its composed config: data, model, task, callbacks, loggers, trainer.

Every ``_target_`` is instantiated through ``instantiate_node``, which checks the values
against the target's type hints first, so a wrong value names its key in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import get_class, get_object, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from litnets.data.base import InMemoryDataModule
from litnets.errors import ConfigError, LitnetsError
from litnets.models.base import Architecture
from litnets.profilers import NoProfiler
from litnets.signatures import check_arguments, plain
from litnets.tasks import TASKS, SchedulerSpec, Task


def instantiate_node(node: Any, what: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` with a one-line error naming the config group.

    Values are first checked against the target's type hints, so a wrong type names its key
    instead of failing somewhere inside the target.
    """
    target = node.get("_target_") if isinstance(node, Mapping) else None
    if target is not None:
        try:
            target = get_object(target)
        except Exception as err:
            raise ConfigError(f"cannot build {what}: no such _target_ {target!r}") from err
        arguments = {k: v for k, v in plain(node).items() if not k.startswith("_")}
        if node.get("_partial_"):  # a null there is filled in later (e.g. a schedule's length)
            arguments = {k: v for k, v in arguments.items() if v is not None}
        check_arguments(target, arguments, what)
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, LitnetsError):
            raise cause from None
        detail = f"{type(cause).__name__}: {cause}" if cause else str(err).splitlines()[0]
        raise ConfigError(f"cannot build {what} from its config: {detail}") from err


def build_datamodule(cfg: DictConfig) -> InMemoryDataModule:
    datamodule = instantiate_node(cfg.data, "data")
    if not isinstance(datamodule, InMemoryDataModule):
        raise ConfigError(f"data._target_ must be an InMemoryDataModule, got {type(datamodule)}")
    return datamodule


def task_kind(cfg: DictConfig, datamodule: InMemoryDataModule) -> str:
    kind = cfg.task.get("kind") or datamodule.task
    if kind not in TASKS:
        raise ConfigError(f"task.kind must be one of {', '.join(TASKS)}, got {kind!r}")
    if kind != datamodule.task:
        raise ConfigError(
            f"task.kind={kind} does not fit this {datamodule.task} dataset "
            f"({type(datamodule).__name__}); leave task.kind=null"
        )
    return kind


def build_model(cfg: DictConfig, datamodule: InMemoryDataModule, kind: str) -> Architecture:
    target = cfg.model.get("_target_") if OmegaConf.is_dict(cfg.model) else None
    if not target:
        raise ConfigError("the model config names no _target_ (the class to build)")
    try:
        model_class = get_class(target)
    except Exception as err:
        reason = str(err).strip().splitlines()[-1]  # Hydra's last line says what is missing
        raise ConfigError(f"cannot build model: no such _target_ {target!r} ({reason})") from err
    if issubclass(model_class, Architecture):
        model_class.check_compatible(kind, datamodule.input_shape)
    return instantiate_node(
        cfg.model,
        "model",
        input_shape=tuple(datamodule.input_shape),
        num_outputs=datamodule.num_outputs,
    )


def build_scheduler(node: Any) -> SchedulerSpec | None:
    spec = plain(node)
    if not spec:
        return None
    interval = spec.pop("interval", "epoch")
    frequency = spec.pop("frequency", 1)
    monitor = spec.pop("monitor", None)
    factory = instantiate_node(spec, "scheduler")
    return SchedulerSpec(factory, interval=interval, frequency=frequency, monitor=monitor)


def build_task(
    cfg: DictConfig, model: Architecture, kind: str, datamodule: InMemoryDataModule
) -> Task:
    if kind == "classification":
        extra: dict[str, Any] = {"num_classes": datamodule.num_outputs}
    else:
        mean, std = datamodule.target_scaling or (0.0, 1.0)
        extra = {"target_mean": mean, "target_std": std}
    # task.lean_step=maybe was taken as true; kind picked the class, and the task words its
    # own message for steps_per_execution (a positive integer, auto or epoch)
    given = {k: v for k, v in plain(cfg.task).items() if k not in ("kind", "steps_per_execution")}
    check_arguments(TASKS[kind], given, "task")
    task = TASKS[kind](
        model,
        optimizer=instantiate_node(cfg.optimizer, "optimizer"),
        scheduler=build_scheduler(cfg.get("scheduler")),
        loss=cfg.task.loss,
        loss_kwargs=plain(cfg.task.loss_kwargs),
        check_finite_every_n_steps=cfg.task.check_finite_every_n_steps,
        lean_step=cfg.task.get("lean_step", True),
        steps_per_execution=cfg.task.get("steps_per_execution", "auto"),
        cuda_graph=cfg.task.get("cuda_graph", False),
        config=plain(cfg),
        **extra,
    )
    # Lets Lightning's model summary report input/output sizes and FLOPs (batch of 2:
    # BatchNorm needs more than one sample).
    task.example_input_array = torch.zeros(2, *datamodule.input_shape)
    return task


@dataclass
class Pieces:
    """What a config describes: the data, the kind of task, the model and its task."""

    datamodule: InMemoryDataModule
    kind: str
    model: Architecture
    task: Task


def build_pieces(cfg: DictConfig, datamodule: InMemoryDataModule | None = None) -> Pieces:
    """Data, model and task of a run (or of a checkpoint's saved run config)."""
    datamodule = datamodule or build_datamodule(cfg)
    kind = task_kind(cfg, datamodule)
    model = build_model(cfg, datamodule, kind)
    return Pieces(datamodule, kind, model, build_task(cfg, model, kind, datamodule))


def build_callbacks(cfg: DictConfig, task: Task, *, has_logger: bool) -> list[L.Callback]:
    """Instantiate ``cfg.callbacks``; ``monitor: auto`` becomes the task's validation metric."""
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        spec = plain(node)
        if not spec or "_target_" not in spec:
            continue
        if spec.get("monitor") == "auto":
            spec["monitor"] = task.monitor
        if spec.get("mode") == "auto":
            spec["mode"] = task.monitor_mode
        callback = instantiate_node(spec, f"callbacks.{name}")
        if isinstance(callback, LearningRateMonitor) and not has_logger:
            continue  # it only writes to loggers, and refuses to run without one
        callbacks.append(callback)
    return callbacks


def build_loggers(cfg: DictConfig) -> list[Any]:
    nodes = cfg.get("logger") or {}
    return [
        instantiate_node(_keep_earlier_csv(node), f"logger.{name}")
        for name, node in nodes.items()
        if node and "_target_" in node
    ]


def _keep_earlier_csv(node: Any) -> Any:
    """A CSV logger whose ``metrics.csv`` exists already (a resumed run) writes beside it.

    Lightning's CSV logger deletes an existing ``metrics.csv`` in its directory; the
    continuation goes to ``<version>/resumed-<n>/`` instead, and nothing is lost.
    """
    spec = plain(node)
    try:
        is_csv = issubclass(get_class(spec["_target_"]), CSVLogger)
    except Exception:  # instantiate_node reports a bad _target_
        return node
    if not is_csv or spec.get("version") is None:
        return node
    version = Path(str(spec["version"]))
    folder = Path(spec.get("save_dir", ".")) / str(spec.get("name", "lightning_logs")) / version
    if not (folder / "metrics.csv").is_file():
        return node
    n = 1
    while (folder / f"resumed-{n}" / "metrics.csv").is_file():
        n += 1
    return {**spec, "version": str(version / f"resumed-{n}")}


def logged_to(loggers: Sequence[Any]) -> dict[str, str]:
    """Where each logger writes, by kind (``tensorboard``, ``csv``), for the run summary."""
    kinds = {TensorBoardLogger: "tensorboard", CSVLogger: "csv"}
    where = {}
    for logger in loggers:
        kind = next((k for cls, k in kinds.items() if isinstance(logger, cls)), None)
        if getattr(logger, "log_dir", None):
            where[kind or type(logger).__name__] = str(Path(logger.log_dir))
    return where


def check_accelerator(accelerator: Any, key: str = "trainer.accelerator") -> None:
    """A GPU run on a machine without one: say so in a line, before anything is built."""
    if str(accelerator) in {"gpu", "cuda"} and not torch.cuda.is_available():
        other = "trainer=auto or trainer=cpu" if key.startswith("trainer") else f"{key}=auto"
        raise ConfigError(
            f"{key}={accelerator}, but no CUDA GPU is available here "
            f"(torch.cuda.is_available() is False): use {other}"
        )


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], loggers: list[Any]) -> L.Trainer:
    check_accelerator(cfg.trainer.accelerator)
    # Lightning's default profiler, minus its per-hook cost (litnets.profilers).
    profiler = {} if cfg.trainer.get("profiler") else {"profiler": NoProfiler()}
    trainer = instantiate_node(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **profiler
    )
    if not isinstance(trainer, L.Trainer):
        raise ConfigError("trainer._target_ must be a lightning Trainer")
    return trainer
