"""Train one configured run: fit, test, and keep its record (``metrics.json``).

``train`` is what ``litnets train`` and ``litnets.train([...])`` end up calling; it reads
top to bottom as the run goes. The pieces come from ``build``, the record from ``record``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from litnets import checkpoints, cluster
from litnets.build import (
    Pieces,
    build_callbacks,
    build_loggers,
    build_pieces,
    build_trainer,
    logged_to,
)
from litnets.callbacks.last_checkpoint import last_checkpoint_callbacks, repeated_sigterm_ignored
from litnets.config import in_sweep
from litnets.errors import ConfigError, DivergenceError, Preempted
from litnets.models.base import Architecture
from litnets.quiet import quiet_lightning
from litnets.record import RunRecord, environment, scalars
from litnets.signatures import check_options
from litnets.tasks import Task
from litnets.tasks.base import epoch_time


@dataclass(frozen=True)
class Invocation:
    """How a run was started: what the environment record says, and what Lightning may do.

    ``can_relaunch``: Lightning starts DDP ranks by re-running this process's command line,
    which only a command (not a notebook or a test calling the API) can offer.
    """

    command: str = "litnets.training.train(cfg)"
    started_at: float | None = None
    """``time.perf_counter()`` when the process (or API call) started: start-up is measured."""
    can_relaunch: bool = False


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


def train(
    cfg: DictConfig,
    *,
    extra_callbacks: Sequence[L.Callback] = (),
    overrides: Sequence[str] = (),
    invocation: Invocation = Invocation(),
) -> dict[str, Any]:
    """Fit, then test, one configured run; return the summary written to ``metrics.json``.

    With ``resume=<run dir>`` the run continues in that dir from its ``last.ckpt`` under its
    own saved config, with the ``key=value`` ``overrides`` of this command on top.
    """
    if not cfg.get("resume") and (run := cluster.requeued_run(Path(cfg.paths.log_dir))):
        print(f"litnets: requeued SLURM job {cluster.job_id()}: resuming {run}", file=sys.stderr)
        cfg, overrides = OmegaConf.merge(cfg, {"resume": str(run)}), ()  # the saved config
    if cfg.get("resume"):
        cfg = resumed_config(cfg, overrides)
    check_options(cfg, RunOptions)
    if cfg.get("tune"):  # tune=lr_find: the range test, then (tune.train) this run at its rate
        from litnets.tuning import tune_then_train

        def then(tuned: DictConfig) -> dict[str, Any]:
            return train(tuned, extra_callbacks=extra_callbacks, invocation=invocation)

        with quiet_lightning():
            L.seed_everything(cfg.seed, workers=True, verbose=False)
            return tune_then_train(cfg, then, invocation.command)
    with quiet_lightning():
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
        pieces = build_pieces(cfg)
        pieces.datamodule.check_available()
        if cfg.compile:
            if cfg.task.get("cuda_graph"):
                raise ConfigError(
                    "compile=true and task.cuda_graph=true are alternatives: pick one"
                )
            pieces.model.compile()
        check_optimized_metric(cfg, pieces.task)
        record = _new_record(cfg, pieces.kind)
        loggers = build_loggers(cfg)
        callbacks = build_callbacks(cfg, pieces.task, has_logger=bool(loggers))
        callbacks += [*extra_callbacks, _RecordOnException(record)]
        trainer = build_trainer(cfg, callbacks, loggers)
        if spawns_ranks(trainer, invocation):
            from litnets.spawn import train_in_spawned_ranks

            return train_in_spawned_ranks(cfg, trainer.world_size, invocation)
        device, precision = trainer.strategy.root_device, str(trainer.precision)
        record.update(
            logs=logged_to(loggers),
            environment=environment(invocation.command, device=device, precision=precision),
        )
        start = _start_from(cfg, pieces.task, record)
        with repeated_sigterm_ignored(trainer):  # until the record is written
            try:
                with contextlib.suppress(Preempted):  # last.ckpt holds its step; recorded below
                    trainer.fit(pieces.task, datamodule=pieces.datamodule, ckpt_path=start)
            finally:
                for callback in last_checkpoint_callbacks(trainer):
                    callback.release_preemption_signal()
            _record_fit(record, trainer, pieces, invocation)
            if record["status"] == "running":
                _test(cfg, trainer, pieces, record)
            summary = record.finish(
                epochs=trainer.current_epoch,
                global_steps=trainer.global_step,
                write=trainer.is_global_zero,
            )
    preempted = summary.get("stopped_by") == "SIGUSR1" and trainer.is_global_zero
    if preempted and (job := cluster.requeue()):  # recorded first: the next start finds it
        print(f"litnets: requeued SLURM job {job}", file=sys.stderr, flush=True)
    return summary


def _new_record(cfg: DictConfig, kind: str) -> RunRecord:
    return RunRecord(
        Path(cfg.paths.output_dir),
        task=kind,
        data=cfg.data._target_.rsplit(".", 1)[-1],
        model=cfg.model._target_.rsplit(".", 1)[-1],
        seed=cfg.seed,
        tutorial=cfg.get("tutorial"),
        **({"debug": cfg.debug_preset} if cfg.get("debug_preset") else {}),
        **({"slurm_job": job} if (job := cluster.job_id()) else {}),
    )


def _test(cfg: DictConfig, trainer: L.Trainer, pieces: Pieces, record: RunRecord) -> None:
    """Test the chosen checkpoint (``test_ckpt``), then mark the run completed."""
    if cfg.test_after_fit:
        ckpt = record["checkpoints"][cfg.test_ckpt]
        trainer.test(pieces.task, datamodule=pieces.datamodule, ckpt_path=ckpt, verbose=False)
        record.update(
            tested_checkpoint=(cfg.test_ckpt if ckpt else None) or "final weights",
            test=scalars(trainer.callback_metrics, "test/"),
        )
    record.update(status="completed")
    if cfg.get("optimized_metric"):
        record.update(objective=objective(record.summary, str(cfg.optimized_metric)))


def _start_from(cfg: DictConfig, task: Task, record: RunRecord) -> str | None:
    """``ckpt_path``, checked to hold this model's weights before Lightning restores it."""
    if not cfg.get("ckpt_path"):
        return None
    checkpoint = checkpoints.load(cfg.ckpt_path)
    checkpoints.check_fits(task, checkpoint["state_dict"], checkpoint["path"])
    trained, limit = checkpoint.get("epoch", 0), cfg.trainer.get("max_epochs")
    if limit is not None and limit != -1 and trained > limit:  # Lightning's traceback else
        raise ConfigError(
            f"{checkpoint['path']} has trained {trained} epochs, more than "
            f"trainer.max_epochs={limit}: give trainer.max_epochs={trained} or more"
        )
    record.update(resumed_from=checkpoint["path"])
    return checkpoint["path"]


def _record_fit(
    record: RunRecord, trainer: L.Trainer, pieces: Pieces, invocation: Invocation
) -> None:
    """What fitting left behind: best validation metrics, checkpoints, timings, a stop."""
    best_val = scalars(trainer.callback_metrics, "val/")
    monitor = trainer.checkpoint_callback
    if monitor is not None and monitor.best_model_score is not None:
        best_val[monitor.monitor] = float(monitor.best_model_score)
    record.update(
        best_val=best_val,
        checkpoints={"best": best_checkpoint(trainer), "last": last_checkpoint(record.run_dir)},
        learned=(
            pieces.model.learned_parameters() if isinstance(pieces.model, Architecture) else {}
        ),
        fit_time_s=round(time.perf_counter() - record.started, 3),
        epoch_time_s={k: round(v, 4) for k, v in epoch_time(pieces.task.epoch_seconds).items()},
        train_samples=pieces.datamodule.num_samples("train"),
    )
    started = pieces.task.train_started_at
    if invocation.started_at is not None and started is not None:
        record.update(startup_s=round(started - invocation.started_at, 3))
    stopped_by = next(
        (c.stopped_by for c in last_checkpoint_callbacks(trainer) if c.stopped_by), None
    )
    if trainer.interrupted or stopped_by:
        record.update(
            status="interrupted", stopped_by=stopped_by, resume_from=last_checkpoint(record.run_dir)
        )


def best_checkpoint(trainer: L.Trainer) -> str | None:
    """The best-validation checkpoint of this run, if one was written."""
    callback = trainer.checkpoint_callback
    return (callback.best_model_path or None) if callback is not None else None


def last_checkpoint(run_dir: Path) -> str | None:
    """The run's ``last.ckpt`` (``checkpoints.last_checkpoint``), if it was written."""
    path = checkpoints.last_checkpoint(run_dir)
    return str(path) if path.is_file() else None


class _RecordOnException(L.Callback):
    """Marks the run dir when training stops on an error: ``metrics.json`` says how and where."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, DivergenceError):
            status = "diverged"
        elif isinstance(exception, KeyboardInterrupt | SIGTERMException | Preempted):
            status = "interrupted"
        else:
            status = "failed"
        self.record.update(status=status, error=f"{type(exception).__name__}: {exception}")
        if last := last_checkpoint(self.record.run_dir):
            self.record.update(resume_from=last)
        self.record.finish(
            epochs=trainer.current_epoch,
            global_steps=trainer.global_step,
            write=trainer.is_global_zero,
        )


def spawns_ranks(trainer: L.Trainer, invocation: Invocation) -> bool:
    """Whether litnets starts this DDP run's ranks itself (``litnets.spawn``): a sweep job's.

    Lightning starts the extra ranks by re-running the command line, once per process.
    Inside a ``-m`` sweep that would run the whole sweep again in each rank, so the job's
    ranks are spawned instead (on this machine); from the Python API there is no command
    line at all. Launchers that give each run its own processes (torchrun, srun, SLURM via
    submitit) need neither.
    """
    if trainer.world_size == 1:
        return False
    environment = getattr(trainer.strategy, "cluster_environment", None)
    if environment is None or environment.creates_processes_externally:
        return False
    if not invocation.can_relaunch:
        raise ConfigError(
            f"the Python API trains in this process and cannot start {trainer.world_size}-process "
            "DDP: run `litnets train ...` (or under torchrun/srun) instead"
        )
    if not in_sweep():
        return False
    if trainer.num_nodes > 1:
        raise ConfigError(
            f"a -m sweep starts DDP ranks on this machine only, not on {trainer.num_nodes} "
            "nodes: sweep them with hydra/launcher=slurm (one SLURM job per trial)"
        )
    return True


def check_optimized_metric(cfg: DictConfig, task: Task) -> None:
    metric = cfg.get("optimized_metric")
    if metric and metric not in task.metric_names():
        raise ConfigError(
            f"optimized_metric={metric} is not a metric of this run; "
            f"choose one of: {', '.join(task.metric_names())}"
        )


def objective(summary: dict[str, Any], metric: str) -> float:
    """The run's best value of ``metric`` (a validation metric): what a sweeper optimises."""
    values = {**summary.get("best_val", {}), **summary.get("test", {})}
    if metric not in values:
        raise ConfigError(
            f"optimized_metric={metric} was never logged in this run (did it validate? see "
            "trainer.check_val_every_n_epoch)"
        )
    return float(values[metric])


def resumed_config(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The saved config of the run in ``cfg.resume``, set to continue from its last.ckpt.

    ``overrides`` (this command's, parsed by Hydra's own parser) change values on top, such
    as ``trainer.max_epochs=50``; choosing another option of a group would change the run.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    last = checkpoints.find_last_checkpoint(cfg.resume)
    saved = checkpoints.run_config(checkpoints.load(last))
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if override.is_sweep_override():
            raise ConfigError(
                f"resume continues one run: it cannot be swept ({override.input_line})"
            )
        value = override.value()
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(saved, parent) if parent else saved
            if node is not None and leaf in node:
                del node[leaf]
            continue
        if OmegaConf.is_dict(OmegaConf.select(saved, key)) and isinstance(value, str):
            raise ConfigError(
                f"resume continues a run under its own config: change values (key=value), "
                f"not groups ({override.input_line})"
            )
        OmegaConf.update(saved, key, value, force_add=True)
    saved.paths.output_dir = str(last.parent.parent)
    saved.ckpt_path = str(last)
    saved.resume = None
    return saved


def format_summary(summary: dict[str, Any], log_dir: str | None = None) -> str:
    """The few lines a user wants at the end of a run."""

    def fmt(values: dict[str, float]) -> str:
        return "  ".join(f"{k}={v:.4f}" for k, v in values.items()) or "-"

    debug = f"debug run ({summary['debug']}, not a result) " if summary.get("debug") else ""
    lines = [
        f"litnets: {debug}{summary['status']} in {summary['wall_time_s']:.1f} s "
        f"({summary['epochs']} epochs, {summary['global_steps']} steps)",
        f"  run dir      {summary['run_dir']}",
    ]
    if "test" in summary:
        lines.append(f"  test         {fmt(summary['test'])}  [{summary['tested_checkpoint']}]")
    if summary.get("best_val"):
        lines.append(f"  best val     {fmt(summary['best_val'])}")
    for key, value in summary.get("learned", {}).items():
        if key != "coefficients":
            lines.append(f"  {'learned':<13}{key}: {value}")
    if "startup_s" in summary:
        lines.append(f"  startup      {summary['startup_s']:.2f} s to the first training step")
    if summary.get("checkpoints", {}).get("best"):
        lines.append(f"  checkpoint   {summary['checkpoints']['best']}")
    if summary["status"] == "interrupted" and summary.get("resume_from"):
        lines.append(f"  resume       litnets train resume={summary['run_dir']}")
    logs = summary.get("logs", {})
    if "csv" in logs:
        lines.append(f"  CSV          {Path(logs['csv']) / 'metrics.csv'}")
    if log_dir and "tensorboard" in logs:
        lines.append(f"  TensorBoard  tensorboard --logdir {log_dir}")
    return "\n".join(lines)
