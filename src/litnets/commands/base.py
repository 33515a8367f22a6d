"""What the Hydra commands share: checks before Hydra starts, one-line errors, exit codes.

A command module defines its Hydra main with ``@hydra_command("<config>")`` and ends with
``run(main)``: the arguments are parsed and checked (``litnets.overrides``), ``--help`` is
answered from the configs, and Hydra then runs the main on the unchanged arguments.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from litnets.config import (
    CONFIG_DIR,
    CONFIG_MISTAKES,
    one_line,
    register_resolvers,
    searchpath_override,
)
from litnets.errors import LitnetsError
from litnets.overrides import CommandLine, SingleRun, check

ExtraOverrides = Callable[[CommandLine], list[str]]


def process_started_at() -> float:
    """``time.perf_counter()`` when the ``litnets`` entry point was imported (start-up clock)."""
    from litnets import cli

    return cli.STARTED_AT


def task_overrides() -> list[str]:
    """This job's ``key=value`` overrides as typed: a ``${...}`` in one stays unresolved.

    Iterating Hydra's ``overrides.task`` list would resolve each string against Hydra's own
    config: ``x=${oc.env:HOME}`` would come back expanded, and an unset variable would fail.
    """
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.to_container(HydraConfig.get().overrides.task)]


def fail(message: str) -> None:
    print(f"litnets: error: {message}", file=sys.stderr)
    sys.exit(2)


FAILED_SWEEP_JOBS: list[str] = []  # jobs of an in-process sweep that stopped with an error


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a ``LitnetsError`` (or one of ``CONFIG_MISTAKES``) as ``litnets: error: ...``, exit 2.

    In a ``-m`` sweep the failed job is reported the same way and returns ``None``, which
    Optuna's sweeper records as a failed trial; the sweep goes on, and the command exits 1 at
    its end. (Optuna's own convention, NaN, stops hydra-optuna-sweeper 1.3 with a traceback:
    it tells the study the NaN again along with the failure, hydra-ecosystem/hydra#2237.)
    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead, as it does for Hydra's errors.
    """
    from litnets.config import in_sweep

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LitnetsError, *CONFIG_MISTAKES) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"litnets: error: {one_line(err)}", file=sys.stderr)
            if in_sweep():
                FAILED_SWEEP_JOBS.append(str(err))
                return None
            _discard_run_dir()
            sys.exit(2)

    return wrapper


def _discard_run_dir() -> None:
    """A single run that failed before writing anything leaves no run dir behind."""
    import logging
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from litnets import cli
    from litnets.record import discard_if_unused

    if HydraConfig.initialized():
        logging.shutdown()  # close the run's log file first
        discard_if_unused(Path(HydraConfig.get().runtime.output_dir), cli.STARTED_EPOCH)


def hydra_command(config_name: str) -> Callable[[Callable[..., Any]], Callable[[], Any]]:
    """``hydra.main`` on the packaged configs, with one-line errors."""
    import hydra

    def decorate(fn: Callable[..., Any]) -> Callable[[], Any]:
        main = hydra.main(config_path=str(CONFIG_DIR), config_name=config_name, version_base="1.3")
        return main(report_errors(fn))

    return decorate


@contextmanager
def composed_once(single: SingleRun | None) -> Iterator[None]:
    """A single run's config composed once, by Hydra, and checked by litnets on it.

    Hydra composes a run's config twice, once in ``get_mode`` only to read ``hydra.mode``
    and again to run it (hydra-ecosystem/hydra#3440), and litnets' check of the command line
    would compose a third time: 0.1-0.3 s each on two cores. Here ``get_mode`` composes the
    run's config with Hydra's own loader and overrides, checks the line on it
    (``SingleRun.compose``: an unknown key is one line, before any run dir exists) and
    answers the run's request to the loader with it. A mode the configs leave unset is
    answered ``RUN``, which Hydra then sets itself, instead of adding ``hydra.mode=RUN`` to
    the overrides and composing again. ``Hydra.get_mode`` is in ``hydra._internal``, and
    the loader is answered once, for the very arguments ``Hydra.compose_config`` passes:
    tests/test_cli.py counts a run's compositions, so a Hydra that changes either fails there.
    """
    if single is None:
        yield
        return
    from hydra._internal.hydra import Hydra
    from hydra.types import RunMode

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        loader = self.config_loader
        asked = dict(  # what Hydra.run asks its loader for (Hydra.compose_config)
            config_name=config_name,
            overrides=list(overrides),
            run_mode=RunMode.RUN,
            from_shell=True,
            validate_sweep_overrides=True,
        )
        cfg = single.compose(lambda: loader.load_configuration(**asked))
        if cfg.hydra.mode == RunMode.MULTIRUN:  # the configs sweep: Hydra composes each job
            return RunMode.MULTIRUN

        def load_configuration(**kwargs: Any) -> Any:
            del loader.load_configuration  # answered once; then the loader's own method
            return cfg if kwargs == asked else loader.load_configuration(**kwargs)

        loader.load_configuration = load_configuration
        return RunMode.RUN  # what Hydra makes of a mode the configs leave unset

    with _hydra_method("get_mode", get_mode):
        yield


@contextmanager
def failed_search_in_one_line() -> Iterator[None]:
    """An Optuna search whose every trial failed ends in one line, not a traceback.

    At its end hydra-optuna-sweeper asks Optuna for the best trial, and Optuna raises
    ``ValueError("No trials are completed yet.")``, which Hydra prints with its stack after
    each trial's own one-line error. Here that error is one more line, and the command exits
    1 as any sweep with failed jobs does. ``Hydra.multirun`` is in ``hydra._internal``:
    tests/test_scaling.py runs such a search, so a Hydra that changes it fails there.
    """
    from hydra._internal.hydra import Hydra

    original = Hydra.multirun

    def multirun(self: Hydra, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except ValueError as err:
            if not FAILED_SWEEP_JOBS or "No trials are completed" not in str(err):
                raise
            print(
                f"litnets: error: no trial of the search completed ({len(FAILED_SWEEP_JOBS)} "
                "failed, each with its error above)",
                file=sys.stderr,
            )
            sys.exit(1)  # not an Exception: Hydra lets it through

    with _hydra_method("multirun", multirun):
        yield


@contextmanager
def _hydra_method(name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    """``Hydra.<name>`` replaced for the length of the command, then put back. ``Hydra`` is
    in ``hydra._internal``: each use names the test that fails if Hydra changes it."""
    from hydra._internal.hydra import Hydra

    original = getattr(Hydra, name)
    setattr(Hydra, name, replacement)
    try:
        yield
    finally:
        setattr(Hydra, name, original)


def run(main: Callable[[], Any], config_name: str, extra: ExtraOverrides | None = None) -> None:
    """Check ``sys.argv``, answer ``--help``, then hand the command line to Hydra."""
    register_resolvers()
    try:
        line = CommandLine.parse(sys.argv[1:], config_name)
        if line.args.help:
            from litnets.commands.help import command_help

            print(command_help(line))
            sys.exit(0)
        single = check(line, defer=True)
        # Hydra reads sys.argv: the same arguments, flags first, then what litnets adds (the
        # dirs of $LITNETS_CONFIG_DIR; --config-dir is Hydra's own flag)
        added = [*searchpath_override(), *(extra(line) if extra else [])]
        sys.argv = [sys.argv[0], *line.hydra_argv, *added]
        with composed_once(single), failed_search_in_one_line():
            main()  # a job's own errors are reported inside it (``report_errors``)
    except LitnetsError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        fail(str(err))
    if FAILED_SWEEP_JOBS:
        print(f"litnets: {len(FAILED_SWEEP_JOBS)} sweep job(s) failed", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
