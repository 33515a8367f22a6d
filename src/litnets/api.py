"""The Python API: ``train``, ``evaluate``, ``predict``, ``export`` with command-line overrides.

Each takes the very strings ``litnets <command>`` takes, runs one job in this process
(a run dir, ``.hydra/``, the log file and ``metrics.json`` exactly as the command makes
them) and returns the run's summary, the contents of its ``metrics.json``::

    from litnets import train, predict
    summary = train(["experiment=mnist_mlp", "trainer.max_epochs=3"])
    predictions = predict([f"ckpt_path={summary['run_dir']}", "input=test"])

Mistakes raise ``litnets.errors.LitnetsError`` subclasses with the one-line message the
command prints. Sweeps (``-m``, ``a,b``, ``choice(...)``) belong to the command line or a
loop; multi-process DDP needs the command line too (Lightning re-runs it for each rank).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litnets.config import CONFIG_MISTAKES, one_line, open_configs
from litnets.errors import ConfigError, LitnetsError
from litnets.overrides import CommandLine, check
from litnets.rundirs import resume_in_place

Job = Callable[[DictConfig, list[str], str, float], dict[str, Any]]


def train(overrides: Sequence[str] = (), *, config_dir: str | Path | None = None) -> dict[str, Any]:
    """Train and test a model, as ``litnets train <overrides>`` does."""

    def job(cfg: DictConfig, given: list[str], command: str, started: float) -> dict[str, Any]:
        from litnets.training import Invocation
        from litnets.training import train as train_run

        invocation = Invocation(command=command, started_at=started, can_relaunch=False)
        return train_run(cfg, overrides=given, invocation=invocation)

    return _run_job("train", overrides, config_dir, job)


def evaluate(
    overrides: Sequence[str] = (), *, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Test a trained model again, as ``litnets eval ckpt_path=...`` does."""
    from litnets import inference

    return _run_job("eval", overrides, config_dir, _inference(inference.evaluate))


def predict(
    overrides: Sequence[str] = (), *, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Predict with a trained model, as ``litnets predict ckpt_path=... input=...`` does.

    The summary's ``predictions`` lists one dict per input (also in ``predictions.csv``).
    """
    from litnets import inference

    return _run_job("predict", overrides, config_dir, _inference(inference.predict))


def export(
    overrides: Sequence[str] = (), *, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Export a trained model, as ``litnets export ckpt_path=...`` does."""
    from litnets import inference

    return _run_job("export", overrides, config_dir, _inference(inference.export))


def _inference(function: Callable[..., dict[str, Any]]) -> Job:
    def job(cfg: DictConfig, given: list[str], command: str, started: float) -> dict[str, Any]:
        return function(cfg, command=command)

    return job


def _run_job(
    config_name: str, overrides: Sequence[str], config_dir: str | Path | None, job: Job
) -> dict[str, Any]:
    """Check the overrides as the command would, then run ``job`` as Hydra runs one job."""
    from hydra.core.utils import run_job
    from hydra.types import HydraContext, RunMode

    started, called_at = time.perf_counter(), time.time()
    given = [str(o) for o in overrides]
    command = f"litnets.{'evaluate' if config_name == 'eval' else config_name}({given!r})"
    config_dirs = [str(config_dir)] if config_dir is not None else []
    line = CommandLine.parse([*given, *(f"--config-dir={d}" for d in config_dirs)], config_name)
    single = check(line, defer=True)
    one_job = ConfigError(
        f"litnets.{config_name}() runs one job: loop over the values in Python, "
        f"or sweep with `litnets {config_name} -m ...`"
    )
    with open_configs(config_name, config_dirs) as configs:
        if single is None and (
            line.args.multirun
            or any(o.is_sweep_override() for o in line.overrides)
            or line.sweeps(configs)
        ):
            raise one_job
        extra = (
            resume_in_place(line, time.strftime("%Y-%m-%d_%H-%M-%S"))
            if config_name == "train"
            else []
        )
        overrides = [*given, *extra]

        def compose() -> DictConfig:
            return configs.compose(overrides, return_hydra_config=True)

        cfg = single.compose(compose) if single else compose()  # composed once, and checked
        if cfg.hydra.mode == RunMode.MULTIRUN:  # a config of the user's sets it
            raise one_job
        context = HydraContext(config_loader=configs.loader, callbacks=_NoCallbacks())
        with _logging_restored():
            result = run_job(
                task_function=lambda task_cfg: job(task_cfg, given, command, started),
                config=cfg,
                job_dir_key="hydra.run.dir",
                job_subdir_key=None,
                hydra_context=context,
            )
    try:
        return result.return_value  # the job's own exception, re-raised, if it failed
    except (LitnetsError, *CONFIG_MISTAKES) as err:
        from litnets.record import discard_if_unused

        discard_if_unused(Path(cfg.hydra.runtime.output_dir), called_at)
        if isinstance(err, LitnetsError):
            raise
        raise ConfigError(one_line(err)) from err


class _NoCallbacks:
    """Hydra's job callbacks (``hydra.callbacks``) are a command-line feature."""

    def on_job_start(self, **kwargs: Any) -> None:
        pass

    def on_job_end(self, **kwargs: Any) -> None:
        pass


@contextmanager
def _logging_restored() -> Iterator[None]:
    """Hydra points loggers at the run's log file: give the caller's logging back after."""
    loggers = [logging.getLogger(), *map(logging.getLogger, list(logging.root.manager.loggerDict))]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers]
    before = {id(handler) for lg in loggers for handler in lg.handlers}
    try:
        yield
    finally:
        added = {
            h
            for lg in logging.root.manager.loggerDict.values()
            for h in getattr(lg, "handlers", [])
        }
        added |= set(logging.getLogger().handlers)
        for handler in added:
            if id(handler) not in before:
                handler.close()
        known = {id(lg) for lg, *_ in saved}
        for logger in logging.root.manager.loggerDict.values():
            if isinstance(logger, logging.Logger) and id(logger) not in known:
                logger.handlers[:] = [h for h in logger.handlers if id(h) in before]
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
