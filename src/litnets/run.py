"""Library entry points the scripts call: build a run from a composed config and execute it."""

from __future__ import annotations

import csv
import json
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import yaml
from hydra.errors import InstantiationException
from hydra.utils import get_class, get_object, instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from litnets import checkpoints
from litnets.callbacks.last_checkpoint import LastCheckpoint
from litnets.config import resume_checkpoint
from litnets.data.base import InMemoryDataModule
from litnets.errors import ConfigError, DivergenceError, LitnetsError
from litnets.inputs import load_inputs
from litnets.models import saved
from litnets.models.base import Architecture
from litnets.signatures import check_arguments
from litnets.tasks import TASKS, SchedulerSpec, Task
from litnets.tasks.base import epoch_time


def _quiet_lightning() -> None:
    """Drop Lightning's advertising tips and warnings about deliberate choices."""
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("💡")
    )
    warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device`")
    # Full-batch runs have one step per epoch; litnets logs steps by global step anyway.
    warnings.filterwarnings("ignore", message="The number of training batches .* logging interval")
    # Lightning 2.6 against torch ≥ 2.9 warns about its own use of a torch API on every run.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Run dirs are unique, so only resume= meets a full checkpoint dir: it continues there.
    warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
    # Epoch metrics are torchmetrics states, already summed over DDP ranks by compute().
    warnings.filterwarnings(
        "ignore", message=r"It is recommended to use `self.log\(.*sync_dist=True"
    )


_quiet_lightning()

# ---- building the pieces --------------------------------------------------------------------


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


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
        arguments = {k: v for k, v in _plain(node).items() if not k.startswith("_")}
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
    try:
        model_class = get_class(cfg.model._target_)
    except Exception as err:
        raise ConfigError(f"model._target_: {err}") from err
    if issubclass(model_class, Architecture):
        model_class.check_compatible(kind, datamodule.input_shape)
    return instantiate_node(
        cfg.model,
        "model",
        input_shape=tuple(datamodule.input_shape),
        num_outputs=datamodule.num_outputs,
    )


def build_scheduler(node: Any) -> SchedulerSpec | None:
    spec = _plain(node)
    if not spec:
        return None
    interval = spec.pop("interval", "epoch")
    frequency = spec.pop("frequency", 1)
    monitor = spec.pop("monitor", None)
    factory = instantiate_node(spec, "scheduler")
    return SchedulerSpec(factory, interval=interval, frequency=frequency, monitor=monitor)


def build_task(cfg: DictConfig, model: Architecture, kind: str, num_outputs: int) -> Task:
    lr = cfg.optimizer.get("lr")
    if lr is not None and (not isinstance(lr, int | float) or lr <= 0):
        raise ConfigError(f"optimizer.lr must be a positive number, got {lr!r}")
    extra = {"num_classes": num_outputs} if kind == "classification" else {}
    return TASKS[kind](
        model,
        optimizer=instantiate_node(cfg.optimizer, "optimizer"),
        scheduler=build_scheduler(cfg.get("scheduler")),
        loss=cfg.task.loss,
        loss_kwargs=_plain(cfg.task.loss_kwargs),
        check_finite_every_n_steps=cfg.task.check_finite_every_n_steps,
        lean_step=cfg.task.get("lean_step", True),
        config=_plain(cfg),
        **extra,
    )


def build_callbacks(cfg: DictConfig, task: Task, *, has_logger: bool) -> list[L.Callback]:
    """Instantiate ``cfg.callbacks``; ``monitor: auto`` becomes the task's validation metric."""
    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        spec = _plain(node)
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
        instantiate_node(node, f"logger.{name}")
        for name, node in nodes.items()
        if node and "_target_" in node
    ]


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


_AT_LEAST_ONE = ("check_val_every_n_epoch", "accumulate_grad_batches", "num_nodes")


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback], loggers: list[Any]) -> L.Trainer:
    check_accelerator(cfg.trainer.accelerator)
    for key in _AT_LEAST_ONE:  # Lightning takes 0 here and fails later (e.g. modulo by zero)
        value = cfg.trainer.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value < 1:
            raise ConfigError(f"trainer.{key} must be at least 1, got {value}")
    trainer = instantiate_node(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    if not isinstance(trainer, L.Trainer):
        raise ConfigError("trainer._target_ must be a lightning Trainer")
    return trainer


# ---- training ---------------------------------------------------------------------------------


def _scalars(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    return {
        key: float(value)
        for key, value in sorted(metrics.items())
        if key.startswith(prefix) and not key.endswith("_step")
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def latest_checkpoint(trainer: L.Trainer) -> str | None:
    """The ``last.ckpt`` written at the end of the latest epoch, if any."""
    for callback in trainer.checkpoint_callbacks:
        if callback.monitor is None and callback.best_model_path:
            return callback.best_model_path
    return None


class _RunRecorder(L.Callback):
    """Marks the run dir when training stops early: ``metrics.json`` says how and where."""

    def __init__(self, output_dir: Path, summary: dict[str, Any]) -> None:
        self.output_dir = output_dir
        self.summary = summary

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, DivergenceError):
            status = "diverged"
        elif isinstance(exception, KeyboardInterrupt | SIGTERMException):
            status = "interrupted"
        else:
            status = "failed"
        self.summary.update(status=status, error=f"{type(exception).__name__}: {exception}")
        last = latest_checkpoint(trainer)
        if last:
            self.summary["resume_from"] = last
        self.summary.update(epochs=trainer.current_epoch, global_steps=trainer.global_step)
        self.summary["run_dir"] = str(self.output_dir)
        if trainer.is_global_zero:
            write_json(self.output_dir / "metrics.json", self.summary)


def _check_ddp_launch(trainer: L.Trainer) -> None:
    """Refuse a DDP job that Lightning would have to spawn inside a ``-m`` sweep.

    Lightning starts the extra ranks by re-running this command, which inside a sweep would
    run the whole sweep again in each rank; and it can do so only once per process, while
    Hydra's basic launcher runs every job in one process. A launcher that gives each job
    its own processes (SLURM via submitit, torchrun) is the way to sweep DDP runs.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if trainer.world_size == 1 or not HydraConfig.initialized():
        return
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None or environment.creates_processes_externally:
        return
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"a -m sweep cannot start {trainer.world_size}-process DDP jobs itself: sweep them "
            "with hydra/launcher=slurm (one SLURM job per trial), or run each job on its own"
        )


def train(
    cfg: DictConfig,
    *,
    extra_callbacks: Sequence[L.Callback] = (),
    process_started_at: float | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit, then test, one configured run; write ``metrics.json`` to its run dir.

    ``process_started_at`` (a ``time.perf_counter()`` taken before the heavy imports) lets
    the summary report start-up time: imports, config, data and setup until the first step.
    With ``resume=<run dir>`` the run continues in that dir from its ``last.ckpt`` under its
    own saved config, with the ``key=value`` ``overrides`` of this command on top.
    Returns the same summary that goes into ``metrics.json``.
    """
    started = time.perf_counter()
    if cfg.get("resume"):
        cfg = resumed_config(cfg, overrides)
    check_run_options(cfg)
    output_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)

    datamodule = build_datamodule(cfg)
    datamodule.check_available()
    kind = task_kind(cfg, datamodule)
    model = build_model(cfg, datamodule, kind)
    if cfg.compile:
        model.compile()
    task = build_task(cfg, model, kind, datamodule.num_outputs)
    _check_optimized_metric(cfg, task)
    summary: dict[str, Any] = {
        "status": "running",
        "task": kind,
        "data": cfg.data._target_.rsplit(".", 1)[-1],
        "model": cfg.model._target_.rsplit(".", 1)[-1],
        "seed": cfg.seed,
    }
    loggers = build_loggers(cfg)
    summary["logs"] = logged_to(loggers)
    callbacks = [
        *build_callbacks(cfg, task, has_logger=bool(loggers)),
        *extra_callbacks,
        _RunRecorder(output_dir, summary),
    ]
    trainer = build_trainer(cfg, callbacks, loggers)
    _check_ddp_launch(trainer)

    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        checkpoint = checkpoints.load(ckpt_path)
        checkpoints.check_fits(task, checkpoint["state_dict"], checkpoint["path"])
        ckpt_path = checkpoint["path"]
        summary["resumed_from"] = ckpt_path
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.perf_counter() - started
    summary["best_val"] = _scalars(trainer.callback_metrics, "val/")
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None:
        summary["checkpoints"] = {
            "best": checkpoint.best_model_path or None,
            "last": latest_checkpoint(trainer),
        }
        if checkpoint.best_model_score is not None:
            summary["best_val"][checkpoint.monitor] = float(checkpoint.best_model_score)
    stopped_by = next(
        (c.stopped_by for c in trainer.callbacks if isinstance(c, LastCheckpoint) and c.stopped_by),
        None,
    )
    if trainer.interrupted or stopped_by:
        summary.update(
            status="interrupted", stopped_by=stopped_by, resume_from=latest_checkpoint(trainer)
        )
    elif cfg.test_after_fit:
        best = checkpoint.best_model_path if checkpoint is not None else None
        ckpt = best if cfg.test_ckpt == "best" else latest_checkpoint(trainer)
        trainer.test(task, datamodule=datamodule, ckpt_path=ckpt or None, verbose=False)
        summary["tested_checkpoint"] = (cfg.test_ckpt if ckpt else None) or "final weights"
        summary["test"] = _scalars(trainer.callback_metrics, "test/")
        summary["status"] = "completed"
    else:
        summary["status"] = "completed"
    if cfg.get("optimized_metric") and summary["status"] == "completed":
        summary["objective"] = _objective(summary, str(cfg.optimized_metric))
    summary["learned"] = model.learned_parameters() if isinstance(model, Architecture) else {}
    summary["fit_time_s"] = round(fit_seconds, 3)
    summary["epoch_time_s"] = {k: round(v, 4) for k, v in epoch_time(task.epoch_seconds).items()}
    summary["train_samples"] = len(datamodule.splits["train"][0])
    if process_started_at is not None and task.train_started_at is not None:
        summary["startup_s"] = round(task.train_started_at - process_started_at, 3)
    return _finish(trainer, output_dir, summary, started)


@dataclass(frozen=True)
class RunOptions:
    """The top-level keys of ``conf/train.yaml``, typed: a bad value fails before training."""

    seed: int
    test_after_fit: bool
    test_ckpt: Literal["best", "last"]
    pictures: bool
    compile: bool
    float32_matmul_precision: Literal["highest", "high", "medium"]
    optimized_metric: str | None


def check_run_options(cfg: DictConfig) -> None:
    options = {f.name: cfg[f.name] for f in fields(RunOptions) if f.name in cfg}
    check_arguments(RunOptions, options, where="")


def _check_optimized_metric(cfg: DictConfig, task: Task) -> None:
    metric = cfg.get("optimized_metric")
    if metric and metric not in task.metric_names():
        raise ConfigError(
            f"optimized_metric={metric} is not a metric of this run; "
            f"choose one of: {', '.join(task.metric_names())}"
        )


def _objective(summary: dict[str, Any], metric: str) -> float:
    """The run's best value of ``metric`` (a validation metric): what a sweeper optimises."""
    values = {**summary.get("best_val", {}), **summary.get("test", {})}
    if metric not in values:
        raise ConfigError(
            f"optimized_metric={metric} was never logged in this run (did it validate? see "
            "trainer.check_val_every_n_epoch)"
        )
    return float(values[metric])


def resumed_config(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The saved config of the run in ``cfg.resume``, set to continue from its last.ckpt."""
    last = resume_checkpoint(str(cfg.resume))
    run_dir = last.parent.parent
    saved = checkpoints.run_config(checkpoints.load(last))
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+~") == "resume":
            continue
        if "." not in key:
            raise ConfigError(
                f"resume continues a run under its own config: change values (key=value), "
                f"not groups ({override})"
            )
        OmegaConf.update(saved, key.lstrip("+"), yaml.safe_load(value), force_add=True)
    saved.paths.output_dir = str(run_dir)
    saved.ckpt_path = str(last)
    saved.resume = None
    return saved


def _finish(
    trainer: L.Trainer, output_dir: Path, summary: dict[str, Any], started: float
) -> dict[str, Any]:
    summary["epochs"] = trainer.current_epoch
    summary["global_steps"] = trainer.global_step
    summary["wall_time_s"] = round(time.perf_counter() - started, 3)
    summary["run_dir"] = str(output_dir)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", summary)
    return summary


def format_summary(summary: dict[str, Any], log_dir: str | None = None) -> str:
    """The few lines a user wants at the end of a run."""

    def fmt(values: dict[str, float]) -> str:
        return "  ".join(f"{k}={v:.4f}" for k, v in values.items()) or "-"

    lines = [
        f"litnets: {summary['status']} in {summary['wall_time_s']:.1f} s "
        f"({summary['epochs']} epochs, {summary['global_steps']} steps)",
        f"  run dir      {summary['run_dir']}",
    ]
    if "test" in summary:
        lines.append(f"  test         {fmt(summary['test'])}  [{summary['tested_checkpoint']}]")
    if summary.get("best_val"):
        lines.append(f"  best val     {fmt(summary['best_val'])}")
    for key, value in summary.get("learned", {}).items():
        if key != "coefficients":
            lines.append(f"  learned {key:<5}{value}")
    if "startup_s" in summary:
        lines.append(f"  startup      {summary['startup_s']:.2f} s to the first training step")
    if summary.get("checkpoints", {}).get("best"):
        lines.append(f"  checkpoint   {summary['checkpoints']['best']}")
    if summary["status"] == "interrupted" and summary.get("resume_from"):
        lines.append(f"  resume       python scripts/train.py resume={summary['run_dir']}")
    logs = summary.get("logs", {})
    if "csv" in logs:
        lines.append(f"  CSV          {Path(logs['csv']) / 'metrics.csv'}")
    if log_dir and "tensorboard" in logs:
        lines.append(f"  TensorBoard  tensorboard --logdir {log_dir}")
    return "\n".join(lines)


# ---- using a trained model ----------------------------------------------------------------------


@dataclass
class Restored:
    """A trained run rebuilt from its checkpoint alone."""

    config: DictConfig
    datamodule: InMemoryDataModule
    model: Architecture
    task: Task
    checkpoint_path: str


def restore(ckpt_path: str, data_dir: str | None = None) -> Restored:
    """Rebuild data, model and task from the run config saved in the checkpoint."""
    checkpoint = checkpoints.load(ckpt_path)
    cfg = checkpoints.run_config(checkpoint)
    if data_dir is not None and "data_dir" in cfg.data:
        cfg.data.data_dir = str(data_dir)
    datamodule = build_datamodule(cfg)
    kind = task_kind(cfg, datamodule)
    model = build_model(cfg, datamodule, kind)
    task = build_task(cfg, model, kind, datamodule.num_outputs)
    checkpoints.check_fits(task, checkpoint["state_dict"], checkpoint["path"])
    task.load_state_dict(checkpoint["state_dict"])
    task.eval()
    return Restored(cfg, datamodule, model, task, checkpoint["path"])


def _inference_trainer(cfg: DictConfig) -> L.Trainer:
    check_accelerator(cfg.accelerator, "accelerator")
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint on its run's test set; write ``metrics.json`` to this run dir."""
    started = time.perf_counter()
    restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
    restored.datamodule.check_available()
    trainer = _inference_trainer(cfg)
    trainer.test(restored.task, datamodule=restored.datamodule, verbose=False)
    summary = {
        "status": "completed",
        "checkpoint": restored.checkpoint_path,
        "test": _scalars(trainer.callback_metrics, "test/"),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(cfg.paths.output_dir),
    }
    write_json(Path(cfg.paths.output_dir) / "metrics.json", summary)
    return summary


def predict(cfg: DictConfig) -> list[dict[str, Any]]:
    """Predict on images, CSV rows or test samples; write ``predictions.csv``."""
    for key in ("top_k", "num_samples"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
    inputs, names, targets = load_inputs(str(cfg.input), restored.datamodule, cfg.num_samples)
    with torch.no_grad():
        outputs = restored.model(inputs)
    rows: list[dict[str, Any]] = []
    if restored.task.kind == "classification":
        labels = restored.datamodule.class_names or [str(i) for i in range(outputs.shape[1])]
        probabilities = outputs.softmax(dim=1)
        top = probabilities.topk(min(cfg.top_k, probabilities.shape[1]), dim=1)
        for i, name in enumerate(names):
            ranked = [
                (labels[j], p)
                for p, j in zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True)
            ]
            row = {"input": name, "prediction": ranked[0][0], "probability": round(ranked[0][1], 6)}
            row["top_k"] = "; ".join(f"{label} {p:.4f}" for label, p in ranked)
            if targets is not None:
                row["true"] = labels[int(targets[i])]
            rows.append(row)
    else:
        for i, name in enumerate(names):
            row = {"input": name, "prediction": [round(v, 6) for v in outputs[i].tolist()]}
            if len(row["prediction"]) == 1:
                row["prediction"] = row["prediction"][0]
            if targets is not None:
                row["true"] = [round(v, 6) for v in targets[i].flatten().tolist()]
            rows.append(row)
    write_csv(Path(cfg.paths.output_dir) / "predictions.csv", rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def export(cfg: DictConfig) -> dict[str, str]:
    """Write the model as ``model.pt`` + ``model.json`` (and ``model.pt2`` via torch.export)."""
    restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
    model, datamodule = restored.model, restored.datamodule
    out = Path(cfg.paths.output_dir)
    kwargs = {k: v for k, v in _plain(restored.config.model).items() if k != "_target_"}
    kwargs |= {"input_shape": list(datamodule.input_shape), "num_outputs": datamodule.num_outputs}
    saved.save(
        model, kwargs, out, class_names=datamodule.class_names, source=restored.checkpoint_path
    )
    files = {"weights": str(out / saved.WEIGHTS), "spec": str(out / saved.SPEC)}
    if "torch_export" in cfg.formats:
        example = torch.zeros(2, *datamodule.input_shape)
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, out / "model.pt2")
        files["torch_export"] = str(out / "model.pt2")
    return files
