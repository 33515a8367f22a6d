"""Run dirs before Hydra makes them: refuse a taken or unusable one, and resume in place.

Hydra creates the run dir (and writes its ``.hydra/`` there) before the command's own
function runs, so these checks read the command line before Hydra starts: a folder that
already holds a run is never overwritten, one that cannot be created is one line, and
``resume=<run dir>`` points Hydra's run dir back at that run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import OmegaConf

from litnets.config import CONFIG_DIR, launched_rank_is_zero
from litnets.errors import ConfigError

if TYPE_CHECKING:
    from litnets.overrides import CommandLine

_OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.log_dir")


def _holds_a_run(folder: Path) -> bool:
    return (folder / "metrics.json").is_file() or any(folder.glob("checkpoints/*.ckpt"))


def check_not_taken(line: CommandLine) -> None:
    """Refuse an explicit ``hydra.run.dir``/``hydra.sweep.dir`` that already holds a run.

    Hydra would overwrite that run's saved config at once, and the new run its
    ``metrics.json`` and ``last.ckpt``; continuing it is what ``resume=`` is for.
    """
    if not launched_rank_is_zero():  # the other ranks join the dir rank 0 checked
        return
    resumed = resumed_dir(line)
    run_dir = line.value("hydra.run.dir")
    if run_dir and "${" not in str(run_dir):
        folder = Path(str(run_dir)).expanduser().resolve()
        if folder != resumed and _holds_a_run(folder):
            raise ConfigError(
                f"{folder} already holds a run: continue it with resume={folder}, "
                "or give a new hydra.run.dir"
            )
    sweep_dir = line.value("hydra.sweep.dir")
    if sweep_dir and "${" not in str(sweep_dir):
        folder = Path(str(sweep_dir)).expanduser().absolute()
        if _holds_a_run(folder) or any(_holds_a_run(job) for job in folder.glob("*/")):
            raise ConfigError(f"{folder} already holds a sweep: give a new hydra.sweep.dir")


def default_log_dir(root_dir: object = None) -> str:
    """``paths.log_dir`` as the packaged config resolves it here (``LITNETS_LOG_DIR``, else
    ``logs`` under ``paths.root_dir``: ``root_dir`` if given, else the current directory)."""
    paths = OmegaConf.create({"paths": OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml")})
    if root_dir:
        paths.paths.root_dir = str(root_dir)
    return str(paths.paths.log_dir)


def check_output_dir(line: CommandLine) -> None:
    """Fail in one line if the run dir cannot be created (Hydra would fail with a traceback).

    The folder is ``paths.log_dir`` (or ``hydra.run.dir``/``hydra.sweep.dir`` when given);
    the part before any ``${...}`` must lead to a directory a folder can be made in: tried
    for real, since permission bits do not bind root and some file systems (``/proc``, a
    read-only mount) refuse whatever they say.
    """
    import tempfile

    chosen = [(key, line.value(key)) for key in _OUTPUT_KEYS if line.value(key) is not None]
    named, where = chosen[-1] if chosen else ("LITNETS_LOG_DIR", default_log_dir())
    where = str(where)
    if not where.strip():  # the run dir would be "/train/runs/..." at the file system's root
        raise ConfigError(f"{named} is empty: give a folder (without it, runs go to ./logs)")
    base = Path(where.split("${")[0] or ".").expanduser().absolute()
    existing = base
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"cannot create run dirs under {where}: {existing} is a file, not a directory"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".litnets-probe-", dir=existing))
    except OSError as err:
        raise ConfigError(
            f"cannot create run dirs under {where}: {existing} is not writable "
            f"({err.strerror}); choose another with paths.log_dir=... or LITNETS_LOG_DIR"
        ) from None


def resumed_dir(line: CommandLine) -> Path | None:
    """The run dir ``resume=`` names, if any."""
    resume = line.value("resume")
    return Path(str(resume)).expanduser().resolve() if resume else None


def quoted(value: str) -> str:
    """``value`` as one Hydra override value, quoted unless it needs no quotes."""
    if all(c.isalnum() or c in "/._-:" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def requeued_dir(line: CommandLine) -> Path | None:
    """On a requeued start of a SLURM job, the run its pre-emption left (``litnets.cluster``).

    The log dir is found as ``conf/paths/default.yaml`` finds it, before Hydra composes.
    """
    from litnets import cluster

    if cluster.restart_count() == 0:
        return None
    log_dir = line.value("paths.log_dir") or default_log_dir(line.value("paths.root_dir"))
    return cluster.requeued_run(Path(str(log_dir)))


def resume_in_place(line: CommandLine, stamp: str) -> list[str]:
    """The overrides that make ``resume=<dir>`` continue in ``<dir>``: Hydra's log too.

    Without them Hydra would open a new, almost empty run dir for the resumed part. Its
    ``train.log`` is appended to, and this command's own config goes to
    ``.hydra/resumed-<stamp>/`` so the original ``.hydra/`` stays as the run began. A
    requeued SLURM job continues its pre-empted run the same way.
    """
    from litnets.checkpoints import find_last_checkpoint

    run_dir = resumed_dir(line) or requeued_dir(line)
    if run_dir is None or line.args.multirun or line.value("hydra.run.dir"):
        return []
    find_last_checkpoint(run_dir)  # before Hydra writes anything there
    subdir = f".hydra/resumed-{stamp}" if launched_rank_is_zero() else "null"
    return [f"hydra.run.dir={quoted(str(run_dir))}", f"hydra.output_subdir={subdir}"]
