"""What the thin scripts share: user errors as one line, not a traceback."""

from __future__ import annotations

import difflib
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import MissingMandatoryValue, OmegaConf

from litnets.config import CONFIG_DIR, compose
from litnets.errors import LitnetsError

_ABSENT = object()


def check_group_choices(argv: Sequence[str]) -> None:
    """Reject ``group=option`` overrides that name no config file, with a suggestion.

    Hydra would say so too, over several lines; this check is a directory listing, so it
    costs nothing before the real composition starts.
    """
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if not sep or "." in key or key.startswith("hydra") or not (CONFIG_DIR / key).is_dir():
            continue
        options = sorted(p.stem for p in (CONFIG_DIR / key).glob("*.yaml"))
        for choice in value.split(","):  # a multirun sweep lists several
            if choice and choice != "null" and choice not in options:
                close = difflib.get_close_matches(choice, options, n=1)
                hint = f"did you mean {key}={close[0]}? " if close else ""
                _fail(f"unknown {key} option {choice!r}; {hint}choose one of: {', '.join(options)}")


def _is_group(key: str) -> bool:
    return "/" in key or "@" in key or (CONFIG_DIR / key).is_dir()


def _has_key(cfg: Any, key: str) -> bool:
    try:
        found = OmegaConf.select(
            cfg, key, default=_ABSENT, throw_on_missing=True, throw_on_resolution_failure=False
        )
    except MissingMandatoryValue:  # `???`: there, waiting for a value
        return True
    return found is not _ABSENT


def check_keys(argv: Sequence[str], config_name: str) -> None:
    """Reject ``key=value`` overrides of keys the composed config does not have.

    Hydra would refuse them too, in five lines; this names the key and the closest existing
    one in one line. It composes the config once more (≈0.15 s), and only when the command
    line changes keys; sweeps over groups are left to Hydra.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        overrides = OverridesParser.create().parse_overrides(
            [arg for arg in argv if not arg.startswith("-")]
        )
    except Exception:  # Hydra reports syntax errors itself
        return
    groups = [o for o in overrides if _is_group(o.key_or_group)]
    keys = [
        o
        for o in overrides
        if not _is_group(o.key_or_group)
        and not (o.is_add() or o.is_force_add())
        and not o.key_or_group.startswith("hydra")
    ]
    if not keys or any(o.is_sweep_override() for o in groups):
        return
    try:
        cfg = compose([o.input_line for o in groups], config_name)
    except Exception:  # a composition error of another kind: Hydra reports it
        return
    for override in keys:
        key = override.key_or_group
        if not _has_key(cfg, key):
            parent, _, leaf = key.rpartition(".")
            node = (
                OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
            )
            siblings = [str(k) for k in node] if OmegaConf.is_dict(node) else []
            siblings = [k for k in siblings if not k.startswith("_")]
            close = difflib.get_close_matches(leaf, siblings, n=1)
            if close:
                hint = f"; did you mean {parent + '.' if parent else ''}{close[0]}?"
            elif siblings:
                hint = f"; {parent or 'the config'} has: {', '.join(siblings)}"
            else:
                hint = ""
            if override.is_delete():
                _fail(f"cannot delete {key!r}: no such key{hint}")
            _fail(f"unknown key {key!r}{hint} (+{override.input_line} would add it)")


_OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.log_dir")


def _value_of(argv: Sequence[str], key: str) -> str | None:
    """The last ``key=value`` (or ``+key=value``) of the command line, as written."""
    values = [a.partition("=")[2] for a in argv if a.lstrip("+").partition("=")[0] == key]
    return values[-1] if values else None


def _resumed_dir(argv: Sequence[str]) -> Path | None:
    """The run dir ``resume=`` names on the command line, if any."""
    resume = _value_of(argv, "resume")
    return Path(resume).expanduser().resolve() if resume and resume != "null" else None


def resume_in_place(argv: Sequence[str]) -> list[str]:
    """``resume=<dir>`` continues in ``<dir>``: Hydra's log and files go there too.

    Without this Hydra would open a new, almost empty run dir for the resumed part. Its
    ``train.log`` is appended to, and this command's own config goes to
    ``.hydra/resumed-<time>/`` so the original ``.hydra/`` stays as the run began.
    """
    argv = list(argv)
    run_dir = _resumed_dir(argv)
    sweeping = any(a in ("-m", "--multirun") for a in argv)
    if run_dir is None or sweeping or _value_of(argv, "hydra.run.dir"):
        return argv
    from litnets.config import launched_rank_is_zero, resume_checkpoint

    try:
        resume_checkpoint(run_dir)  # before Hydra writes anything there
    except LitnetsError as err:
        _fail(str(err))
    subdir = f".hydra/resumed-{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    return [
        *argv,
        f"hydra.run.dir={run_dir}",
        f"hydra.output_subdir={subdir if launched_rank_is_zero() else 'null'}",
    ]


def _holds_a_run(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or any(folder.glob("checkpoints/*.ckpt"))


def check_not_taken(argv: Sequence[str]) -> None:
    """Refuse an explicit ``hydra.run.dir``/``hydra.sweep.dir`` that already holds a run.

    Hydra would overwrite that run's saved config at once, and the new run its
    ``metrics.json`` and ``last.ckpt``; continuing it is what ``resume=`` is for.
    """
    from litnets.config import launched_rank_is_zero

    if not launched_rank_is_zero():  # the other ranks join the dir rank 0 checked
        return
    resumed = _resumed_dir(argv)
    run_dir = _value_of(argv, "hydra.run.dir")
    if run_dir and "${" not in run_dir:
        folder = Path(run_dir).expanduser().resolve()
        if folder != resumed and _holds_a_run(folder):
            _fail(
                f"{folder} already holds a run: continue it with resume={folder}, "
                "or give a new hydra.run.dir"
            )
    sweep_dir = _value_of(argv, "hydra.sweep.dir")
    if sweep_dir and "${" not in sweep_dir:
        folder = Path(sweep_dir).expanduser().absolute()
        if _holds_a_run(folder) or any(_holds_a_run(job) for job in folder.glob("*/")):
            _fail(f"{folder} already holds a sweep: give a new hydra.sweep.dir")


def check_output_dir(argv: Sequence[str]) -> None:
    """Fail in one line if the run dir cannot be created (Hydra would fail with a traceback).

    The folder is ``paths.log_dir`` (or ``hydra.run.dir``/``hydra.sweep.dir`` when given);
    the part before any ``${...}`` must lead to a writable directory.
    """
    chosen = [
        arg.partition("=")[2] for arg in argv if arg.lstrip("+").partition("=")[0] in _OUTPUT_KEYS
    ]
    if chosen:
        where = chosen[-1]
    else:
        paths = OmegaConf.create({"paths": OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml")})
        where = str(paths.paths.log_dir)
    base = Path(where.split("${")[0] or ".").expanduser().absolute()
    existing = base
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        _fail(f"cannot create run dirs under {where}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(
            f"cannot create run dirs under {where}: {existing} is not writable; "
            "choose another with paths.log_dir=... or LITNETS_LOG_DIR"
        )


def check_command_line(argv: Sequence[str], config_name: str) -> None:
    """The checks every script runs on its arguments before Hydra starts."""
    check_group_choices(argv)
    check_output_dir(argv)
    check_not_taken(argv)
    check_keys(argv, config_name)


def _fail(message: str) -> None:
    print(f"litnets: error: {message}", file=sys.stderr)
    sys.exit(2)


def exit_status(summary: dict[str, Any]) -> int:
    """0 for a finished run; a stopped one exits as the signal's shell convention says."""
    if summary.get("status") != "interrupted":
        return 0
    return {"SIGINT": 130, "SIGTERM": 143}.get(str(summary.get("stopped_by")), 1)


FAILED_SWEEP_JOBS: list[str] = []  # jobs of an in-process sweep that stopped with an error


def sweep_exit_status() -> int:
    """After a ``-m`` sweep whose jobs ran in this process: 1 if any of them failed."""
    if FAILED_SWEEP_JOBS:
        print(f"litnets: {len(FAILED_SWEEP_JOBS)} sweep job(s) failed", file=sys.stderr)
        return 1
    return 0


def _in_sweep() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _one_line(err: Exception) -> str:
    if isinstance(err, MissingMandatoryValue):  # a `???` in the config that nobody filled
        key = err.full_key or "a required value"
        return f"{key} is required: add {key}=... to the command line"
    return str(err)


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a ``LitnetsError`` (or a required value left unset) as ``litnets: error: ...``, exit 2.

    In a ``-m`` sweep the failed job is reported the same way and returns NaN, which Optuna
    records as a failed trial; the sweep goes on, and the script exits 1 at its end.
    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead, as it does for Hydra's errors.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (LitnetsError, MissingMandatoryValue) as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"litnets: error: {_one_line(err)}", file=sys.stderr)
            if _in_sweep():
                FAILED_SWEEP_JOBS.append(str(err))
                return float("nan")
            sys.exit(2)

    return wrapper
