"""Where the configs live, which dirs users add to them, and composing them outside a Hydra main.

The configs ship inside the package (``litnets.conf``, mapped from the repository's top-level
``conf/`` by pyproject.toml), so a wheel installed anywhere finds them the same way an
editable checkout does. Users add their own experiments, data or model configs without
touching the package: ``--config-dir my_conf`` on the command line, or the directories in
``LITNETS_CONFIG_DIR`` (``os.pathsep``-separated), both searched after the packaged ones.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)

from litnets.errors import ConfigError


def _packaged_configs() -> Path:
    try:
        return Path(str(files("litnets.conf")))
    except ModuleNotFoundError:  # a checkout's src/ on PYTHONPATH, not installed (a GPU host)
        return Path(__file__).resolve().parents[2] / "conf"


CONFIG_DIR = _packaged_configs()
"""The packaged configs: ``<site-packages>/litnets/conf`` or, editable or run from a checkout's
``src/``, the checkout's ``conf/``."""

USER_CONFIG_ENV = "LITNETS_CONFIG_DIR"
INTERNAL_GROUPS = ("hydra", "recipe")
"""Groups users do not choose from: Hydra's own, and the tutorial settings per data × model."""


def user_config_dirs(extra: Sequence[str | Path] = ()) -> list[str]:
    """Search-path entries (``file://...``) for ``extra`` dirs, then ``$LITNETS_CONFIG_DIR``'s."""
    listed = os.environ.get(USER_CONFIG_ENV, "")
    folders = [*extra, *(p for p in listed.split(os.pathsep) if p)]
    entries = []
    for folder in folders:
        path = Path(folder).expanduser().absolute()
        if not path.is_dir():
            source = "--config-dir" if folder in extra else USER_CONFIG_ENV
            raise ConfigError(f"{source}: config directory {path} not found")
        entries.append(f"file://{path}")
    return entries


def launched_rank_is_zero() -> bool:
    """False in the extra processes of a multi-process launch (torchrun, srun, Lightning DDP).

    Read from the launchers' environment variables, because Hydra needs the answer before
    any process group exists: only rank 0 saves the composed config (``.hydra/``).
    """
    env = os.environ
    if "RANK" in env:  # torchrun
        return env["RANK"] == "0"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:  # srun
        return env["SLURM_PROCID"] == "0"
    return env.get("LOCAL_RANK", "0") == "0" and env.get("NODE_RANK", "0") == "0"


def _rank() -> str:
    env = os.environ
    return env.get("RANK") or env.get("SLURM_PROCID") or env.get("LOCAL_RANK", "0")


def run_name() -> str:
    """The run dir's name: time and process id, or one name shared by every rank of a launch.

    A single process gets ``<date>_<time>_<pid>`` (two runs in the same second still differ).
    Under torchrun or a multi-task srun each rank composes its own config; a name from the
    launch's id keeps them in one dir (``torchrun-<rdzv id>``, ``slurm-<job>-<step>``).
    ``LITNETS_RUN_NAME`` sets it outright.
    """
    env = os.environ
    if env.get("LITNETS_RUN_NAME"):
        return env["LITNETS_RUN_NAME"]
    if "TORCHELASTIC_RUN_ID" in env:
        run_id = env["TORCHELASTIC_RUN_ID"]
        return f"torchrun-{run_id if run_id not in ('', 'none') else os.getppid()}"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in env:
        return f"slurm-{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', '0')}"
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"


RESOLVERS: dict[str, Any] = {
    # where relative defaults (logs/, data/) are taken from: the directory the command runs in
    "litnets.cwd": os.getcwd,
    "litnets.run_name": run_name,
    # `${litnets.on_rank_zero:x}`: x on rank 0, null on the other ranks of a launch
    "litnets.on_rank_zero": lambda value: value if launched_rank_is_zero() else None,
    "litnets.rank_suffix": lambda: "" if launched_rank_is_zero() else f"_rank{_rank()}",
}


_CACHED = {"litnets.run_name"}  # one name per composed config, however often it is read


def register_resolvers() -> None:
    """Make litnets' ``${litnets.*:}`` resolvers known to OmegaConf.

    Called by the commands and the API before they compose a config, never on import:
    importing litnets leaves OmegaConf (and every other global) as it found it.
    """
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=name in _CACHED)


def searchpath_override(config_dirs: Sequence[str | Path] = ()) -> list[str]:
    """``hydra.searchpath=[...]`` for ``config_dirs`` and ``$LITNETS_CONFIG_DIR``'s, if any.

    An override rather than a line in the configs: Hydra takes ``hydra.searchpath`` from
    the primary config only, and ``benchmark.yaml`` composes ``train.yaml`` as a default.
    """
    searched = ",".join(f"'{entry}'" for entry in user_config_dirs(config_dirs))
    return [f"hydra.searchpath=[{searched}]"] if searched else []


class Configs:
    """The configs as Hydra sees them for one command: packaged ones plus the user's dirs.

    Open it with ``with open_configs(...) as configs``; group listings and compositions
    inside the block share one Hydra initialisation.
    """

    def __init__(self, config_name: str, config_dirs: Sequence[str | Path]) -> None:
        from hydra.core.global_hydra import GlobalHydra

        self.config_name = config_name
        self.loader = GlobalHydra.instance().config_loader()
        self.search_overrides = searchpath_override(config_dirs)
        self._listings: dict[tuple[str, Any], list[str]] = {}

    def options(self, group: str) -> list[str]:
        """The config names of ``group`` (``data`` → ``iris``, ``mnist``, ...)."""
        from hydra.core.object_type import ObjectType

        return self._listing(group, ObjectType.CONFIG)

    def is_group(self, name: str) -> bool:
        """Whether ``name`` is a config group (holds configs or groups) in any search dir."""
        from hydra.core.object_type import ObjectType

        parent, _, leaf = name.rpartition("/")
        return leaf in self._listing(parent, ObjectType.GROUP)  # one listing for all siblings

    def groups(self, parent: str = "") -> list[str]:
        """Every config group, nested ones as ``hydra/launcher``."""
        from hydra.core.object_type import ObjectType

        found = []
        for name in self._listing(parent, ObjectType.GROUP):
            group = f"{parent}/{name}" if parent else name
            found += [group, *self.groups(group)]
        return found

    def _listing(self, group: str, kind: Any) -> list[str]:
        """Hydra's listing, once per block: each costs a copy of Hydra's config repository."""
        if (group, kind) not in self._listings:
            found = self.loader.get_group_options(group, kind, overrides=self.search_overrides)
            self._listings[group, kind] = sorted(found)
        return list(self._listings[group, kind])

    def compose(self, overrides: Sequence[str], *, return_hydra_config: bool = False) -> DictConfig:
        from hydra import compose as hydra_compose
        from yaml import YAMLError

        try:
            return hydra_compose(
                self.config_name,
                [*overrides, *self.search_overrides],
                return_hydra_config=return_hydra_config,
            )
        except YAMLError as err:
            raise bad_yaml(err) from None


def bad_yaml(err: Exception) -> ConfigError:
    """A config file that is not valid YAML, as one ``ConfigError`` line naming the spot.

    PyYAML's own message spans four lines, and Hydra passes it on as a traceback.
    """
    mark = getattr(err, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else "a config"
    problem = getattr(err, "problem", None) or str(err).strip().splitlines()[-1]
    context = getattr(err, "context", None)
    return ConfigError(f"bad YAML in {where}: {problem}" + (f" ({context})" if context else ""))


@contextmanager
def open_configs(
    config_name: str = "train", config_dirs: Sequence[str | Path] = ()
) -> Iterator[Configs]:
    """Hydra initialised on the packaged configs, for listing and composing them."""
    from hydra import initialize_config_dir

    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name=config_name):
        yield Configs(config_name, config_dirs)


def compose(
    overrides: Sequence[str] = (),
    config_name: str = "train",
    *,
    output_dir: str | None = None,
    config_dirs: Sequence[str | Path] = (),
    return_hydra_config: bool = False,
) -> DictConfig:
    """Compose a config as the commands would, without starting a run.

    ``output_dir`` stands in for Hydra's run dir, which only exists inside a run;
    ``config_dirs`` are searched after the packaged configs, as ``--config-dir`` is.
    """
    with open_configs(config_name, config_dirs) as configs:
        cfg = configs.compose(overrides, return_hydra_config=return_hydra_config)
    if output_dir is not None:
        OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    return cfg


def in_sweep() -> bool:
    """Whether this process runs a job of a ``-m`` sweep (Hydra's own record of its mode)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


CONFIG_MISTAKES = (MissingMandatoryValue, InterpolationResolutionError)
"""OmegaConf's errors for a user's config: a ``???`` nobody filled, a ``${...}`` naming an
unset variable or a missing key. Found only when the value is read, so inside a run."""


def one_line(err: Exception) -> str:
    """What the commands print after ``litnets: error:`` (and the API raises) for ``err``."""
    if isinstance(err, MissingMandatoryValue):
        key = err.full_key or "a required value"
        return f"{key} is required: add {key}=... to the command line"
    if isinstance(err, InterpolationResolutionError):
        return f"cannot resolve {err.full_key}: {_resolver_error(err)}"
    return str(err)


def _resolver_error(err: Exception) -> str:
    """The error a resolver raised (an unset variable's ``KeyError``), not OmegaConf's wrap."""
    while isinstance(err, OmegaConfBaseException) and isinstance(err.__context__, Exception):
        err = err.__context__
    text = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
    return text.strip().splitlines()[0]
