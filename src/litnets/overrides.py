"""The command line, parsed by Hydra's own parsers and checked before a run starts.

Every form of Hydra's override grammar reaches Hydra unchanged: sweeps (``a,b``,
``choice(...)``, ``range(...)``, ``glob(...)``, ``interval(...)``), quoted values, lists and
dicts, ``null``, ``+key``, ``++key``, ``~key``, and the flags (``-m``, ``--cfg job``,
``--info``, ``--config-dir``). What litnets adds is checking it all first, on the parsed
overrides and on every value of every sweep: an unknown group option or key, or a value
that does not fit the type hint of what it configures, is one ``ConfigError`` line with a
suggestion, before any run dir is made or any sweep job has run.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, MissingMandatoryValue, OmegaConf

from litnets.config import (
    Configs,
    bad_yaml,
    open_configs,
    register_resolvers,
    user_config_dirs,
)
from litnets.errors import ConfigError
from litnets.rundirs import check_not_taken, check_output_dir

_ABSENT = object()
RESUME_IN_A_SWEEP = "resume= continues one run: it cannot be part of a -m sweep"
"""Refused where the line sweeps (``check``) and where its configs do (``SingleRun``)."""


def _hydra_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Hydra's flags and overrides, split by Hydra's own argument parser.

    ``get_args_parser`` is in ``hydra._internal`` but is the very parser ``hydra.main`` uses,
    so flags are understood exactly as Hydra will understand them; tests/test_overrides.py
    pins the flags read here (``-m``, ``--cfg``, ``--config-dir``, ``--config-name``). Flags
    may come after overrides (``model=mlp -m seed=1,2``): ``CommandLine.hydra_argv`` puts
    them first, where Hydra's parser needs them.
    """
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str) -> None:
        raise ConfigError(message)

    parser.error = error  # type: ignore[method-assign]
    return parser.parse_intermixed_args(list(argv))


@dataclass
class CommandLine:
    """One command's arguments: Hydra's flags, and its overrides as Hydra parses them."""

    config_name: str
    args: argparse.Namespace
    overrides: list[Any]  # hydra.core.override_parser.types.Override
    hydra_argv: list[str]
    """The arguments as Hydra takes them: the same flags and overrides, flags first."""

    @classmethod
    def parse(cls, argv: Sequence[str], config_name: str) -> CommandLine:
        from hydra.core.override_parser.overrides_parser import OverridesParser
        from hydra.errors import OverrideParseException

        args = _hydra_arguments(argv)
        try:
            overrides = OverridesParser.create().parse_overrides(args.overrides)
        except OverrideParseException as err:
            reason = " ".join(str(err).split())
            raise ConfigError(f"cannot parse the overrides: {reason}") from None
        flags = list(argv)
        for override in args.overrides:
            flags.remove(override)
        return cls(args.config_name or config_name, args, overrides, [*flags, *args.overrides])

    @property
    def config_dirs(self) -> list[str]:
        return [self.args.config_dir] if self.args.config_dir else []

    @property
    def runs(self) -> bool:
        """False for ``--cfg``, ``--info``, ``--help``: Hydra shows something and stops."""
        a = self.args
        return not (a.cfg or a.info or a.help or a.hydra_help or a.shell_completion)

    def value(self, key: str) -> Any:
        """The value the last plain override of ``key`` sets (``None`` if none does)."""
        found = [o for o in self.overrides if o.key_or_group == key and not o.is_delete()]
        if not found or found[-1].is_sweep_override():
            return None
        return found[-1].value()

    def sweeps(self, configs: Configs) -> bool:
        """Whether Hydra will run this as a sweep: ``-m``, or ``hydra.mode`` says so."""
        if self.args.multirun:
            return True
        return str(self.first_job(configs).hydra.mode) in {"MULTIRUN", "RunMode.MULTIRUN"}

    @property
    def mode_is_the_configs(self) -> bool:
        """Whether Hydra runs this line in the mode its configs set (``hydra.mode``): a run
        that neither sweeps (``-m``, ``a,b``) nor sets ``hydra.mode`` on the command line."""
        return (
            self.runs
            and not self.args.multirun
            and not any(o.is_sweep_override() for o in self.overrides)
            and not any(o.key_or_group in ("hydra", "hydra.mode") for o in self.overrides)
        )

    def first_job(self, configs: Configs) -> DictConfig:
        """The config of the first job (Hydra's part included): each sweep at its first value."""
        chosen = []
        for override in self.overrides:
            if override.is_interval_sweep():
                continue
            if override.is_discrete_sweep():
                values = _group_values(override, configs)
                if values:
                    value = "null" if values[0] is None else values[0]
                    chosen.append(f"{override.get_key_element()}={value}")
            else:
                chosen.append(override.input_line)
        return configs.compose(chosen, return_hydra_config=True)

    @staticmethod
    def _is_group(override: Any, configs: Configs) -> bool:
        key = override.key_or_group
        return not key.startswith("hydra") and "." not in key and configs.is_group(key)


def check(line: CommandLine, *, defer: bool = False) -> SingleRun | None:
    """Every check; raises ``ConfigError`` on the first failure.

    A single run (``mode_is_the_configs``: no sweep, no ``hydra.mode`` on the line) gets a
    ``SingleRun`` back, whose ``compose`` composes the run's config and checks the line on
    it. With ``defer`` that is left to the caller, which composes the config it runs
    anyway: a run's config is then composed once (``commands.base.composed_once``).
    ``None``: a sweep or ``--cfg``/``--info``, whose jobs are checked here, each sweep value
    in turn.
    """
    register_resolvers()
    user_config_dirs(line.config_dirs)  # each one there
    check_output_dir(line)
    check_not_taken(line)
    if line.mode_is_the_configs:
        single = SingleRun(line)
        if not defer:
            overrides = [o.input_line for o in line.overrides]
            with open_configs(line.config_name, line.config_dirs) as configs:
                single.compose(lambda: configs.compose(overrides, return_hydra_config=True))
        return single
    with open_configs(line.config_name, line.config_dirs) as configs:
        _check_jobs(line, _checked_groups(line, configs), configs)
        if line.value("resume") and line.sweeps(configs):
            raise ConfigError(RESUME_IN_A_SWEEP)
        if line.args.multirun and line.runs:
            _check_sweeper(line, _compose_first_job(line, configs))
    return None


@dataclass(frozen=True)
class SingleRun:
    """A command line that runs one job: checked on the config composed for the run."""

    line: CommandLine

    def compose(self, compose: Callable[[], DictConfig]) -> DictConfig:
        """The run's config as ``compose()`` makes it (Hydra's part included), checked; a
        failure in one line.

        Where Hydra cannot compose it (an unknown group option or key, a dict merged into
        a closed node) the overrides are checked one by one for a precise message with a
        suggestion; values are checked against the type hints of what they configure.
        """
        from hydra.errors import HydraException
        from hydra.types import RunMode
        from yaml import YAMLError

        line = self.line
        try:
            cfg = compose()
        except YAMLError as err:  # a config file of the user's: the line itself is fine
            raise bad_yaml(err) from None
        except (HydraException, ValueError) as err:
            from hydra.core.global_hydra import GlobalHydra

            # The Hydra that composed (the command's own, inside hydra.main) goes: this
            # run stops here, and the checks below need a Hydra of their own.
            GlobalHydra.instance().clear()
            with open_configs(line.config_name, line.config_dirs) as configs:
                _check_jobs(line, _checked_groups(line, configs), configs)  # precisely, if found
            raise ConfigError(_one_line(err)) from None
        groups = cfg.hydra.runtime.choices  # every group's option, as composed
        for override in line.overrides:
            key = override.key_or_group
            if not (override.is_hydra_override() or override.is_delete() or key in groups):
                _check_values(override, cfg, line.config_name)
        if cfg.hydra.mode == RunMode.MULTIRUN:  # the configs sweep (hparams_search=...)
            if line.value("resume"):
                raise ConfigError(RESUME_IN_A_SWEEP)
            if line.runs:
                _check_sweeper(line, cfg)
        return cfg


def _checked_groups(line: CommandLine, configs: Configs) -> list[Any]:
    """The overrides that choose a group's option, each option checked to be there."""
    groups = [o for o in line.overrides if CommandLine._is_group(o, configs)]
    for override in groups:
        _check_choices(override, configs)
    return groups


def _keys(line: CommandLine, groups: Sequence[Any]) -> list[Any]:
    """The overrides that set keys of the job's config (not a group's option, not Hydra's)."""
    return [o for o in line.overrides if o not in groups and not o.is_hydra_override()]


def _check_jobs(line: CommandLine, groups: list[Any], configs: Configs) -> None:
    """The key overrides against each job's config (Hydra's part left out), and what merging
    them can still refuse (a dict or list into a closed node)."""
    keys = _keys(line, groups)
    if not keys:
        return
    hydras = [o for o in line.overrides if o.is_hydra_override()]
    for choices, cfg in _compositions(groups, hydras, configs):
        try:
            _check_keys(keys, cfg, line.config_name)
        except ConfigError as err:
            if not choices:
                raise
            raise ConfigError(f"{err} (in the sweep's job with {choices})") from None
    if any(isinstance(o.value(), dict | list) for o in keys if not o.is_sweep_override()):
        _compose_first_job(line, configs)  # merging a dict or list can still fail


def _one_line(err: Exception) -> str:
    """Hydra's message, its lines joined."""
    reason = "; ".join(part.strip() for part in str(err).strip().splitlines() if part.strip())
    return reason or type(err).__name__


def _compose_first_job(line: CommandLine, configs: Configs) -> DictConfig:
    """The first job's whole config; Hydra's refusal (merging into a closed dict, ...) in a line."""
    from hydra.errors import HydraException

    try:
        return line.first_job(configs)
    except (HydraException, ValueError) as err:
        raise ConfigError(_one_line(err)) from None


def _check_sweeper(line: CommandLine, first: DictConfig) -> None:
    """A sweep its sweeper can run: ``interval()`` and an objective need Optuna's."""
    sweeper = str(first.hydra.sweeper.get("_target_", ""))
    optuna = "optuna" in sweeper.lower()
    if any(o.is_interval_sweep() for o in line.overrides) and not optuna:
        raise ConfigError(
            "interval(...) needs a sweeper that samples, such as Optuna's: add "
            "hydra/sweeper=optuna (plus optimized_metric=...), or use choice(...)/range(...)"
        )
    if optuna and not first.get("optimized_metric"):
        raise ConfigError(
            "an Optuna sweep maximises or minimises optimized_metric: add, for example, "
            "optimized_metric=val/acc hydra.sweeper.direction=maximize"
        )
    trials = first.hydra.sweeper.get("n_trials", 1) if optuna else 1
    if not isinstance(trials, int) or trials < 1:  # 0: Optuna's "No trials are completed yet"
        raise ConfigError(f"hydra.sweeper.n_trials must be a positive integer, got {trials!r}")


# ---- group options ---------------------------------------------------------------------


def _group_values(override: Any, configs: Configs) -> list[str | None]:
    """The values an override selects, as strings: one, or each of a sweep's.

    A ``glob(...)`` is matched against the group's options, the user's config dirs
    included (Hydra's own expansion would need its config loader).
    """
    from hydra.core.override_parser.types import Glob

    value = override.value()
    if isinstance(value, Glob):
        return value.filter(configs.options(override.key_or_group))
    if override.is_sweep_override():
        return [None if v == "null" else v for v in override.sweep_string_iterator()]
    if isinstance(value, list):  # several configs of one group: group=[a,b]
        return [str(v) for v in value]
    return [None if value is None else str(value)]


def _check_choices(override: Any, configs: Configs) -> None:
    if override.is_delete() or override.is_interval_sweep():
        return
    group = override.key_or_group
    options = configs.options(group)
    for choice in _group_values(override, configs):
        if choice is not None and choice not in options:
            close = difflib.get_close_matches(choice, options, n=1)
            hint = f"did you mean {group}={close[0]}? " if close else ""
            raise ConfigError(
                f"unknown {group} option {choice!r}; {hint}choose one of: {', '.join(options)}"
            )


def _compositions(
    groups: list[Any], hydras: list[Any], configs: Configs
) -> Iterator[tuple[str, DictConfig]]:
    """The configs a command's jobs start from: its group choices, each sweep value in turn.

    Composed with the ``hydras`` overrides, as Hydra will compose them; Hydra's part is left
    out. Sweeps over several groups are varied one group at a time (not their full product):
    what keys a config has depends on its groups one by one, and a sweep of 5 × 5 groups
    then costs 9 compositions rather than 25.
    """
    fixed = [o.input_line for o in groups if not o.is_sweep_override()]
    swept = {
        o.get_key_element(): _group_values(o, configs) for o in groups if o.is_discrete_sweep()
    }
    first = {key: values[0] for key, values in swept.items() if values}
    hydra_fixed = [o.input_line for o in hydras if not o.is_sweep_override()]
    yield _compose(configs, [*fixed, *hydra_fixed], first)
    for key, values in swept.items():
        for other in values[1:]:
            yield _compose(configs, fixed, {**first, key: other})


def _compose(
    configs: Configs, fixed: list[str], choices: dict[str, str | None]
) -> tuple[str, DictConfig]:
    from hydra.errors import HydraException

    chosen = [f"{key}={'null' if v is None else v}" for key, v in choices.items()]
    try:
        return " ".join(chosen), configs.compose([*fixed, *chosen])
    except (HydraException, ValueError) as err:  # what Hydra would fail on too, in one line
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"cannot compose the config with {' '.join(fixed + chosen)}: {reason}"
        ) from err


# ---- keys and values ---------------------------------------------------------------------


def _has_key(cfg: Any, key: str) -> bool:
    try:
        found = OmegaConf.select(
            cfg, key, default=_ABSENT, throw_on_missing=True, throw_on_resolution_failure=False
        )
    except MissingMandatoryValue:  # `???`: there, waiting for a value
        return True
    return found is not _ABSENT


def _key_hint(cfg: DictConfig, key: str) -> str:
    """``; did you mean trainer.max_epochs?``, or the keys that are there, for a missing key."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False) if parent else cfg
    siblings = (
        [str(k) for k in node if not str(k).startswith("_")] if OmegaConf.is_dict(node) else []
    )
    close = difflib.get_close_matches(leaf, siblings, n=1)
    if close:
        return f"; did you mean {parent + '.' if parent else ''}{close[0]}?"
    if siblings:
        return f"; {parent or 'the config'} has: {', '.join(siblings)}"
    return ""


def _check_keys(keys: list[Any], cfg: DictConfig, config_name: str) -> None:
    for override in keys:
        key = override.key_or_group
        exists = _has_key(cfg, key)
        if override.is_delete():
            if not exists:
                raise ConfigError(f"cannot delete {key!r}: no such key{_key_hint(cfg, key)}")
            continue
        if override.is_add() and exists:
            raise ConfigError(
                f"+{key} adds a key, but {key} is already there: set it with {key}=... "
                f"(or ++{key}=... to set or add)"
            )
        if not (override.is_add() or override.is_force_add() or exists):
            raise ConfigError(
                f"unknown key {key!r}{_key_hint(cfg, key)} (+{override.input_line} would add it)"
            )
        _check_values(override, cfg, config_name)


def _values(override: Any) -> list[Any]:
    """The Python values an override sets: one, or each of a sweep's (an interval: its ends)."""
    from hydra.core.override_parser.types import QuotedString
    from hydra.errors import HydraException

    def plain(value: Any) -> Any:
        if isinstance(value, QuotedString):
            return value.text
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {plain(k): plain(v) for k, v in value.items()}
        return value

    if override.is_interval_sweep():
        interval = override.value()
        return [interval.start, interval.end]
    if override.is_discrete_sweep():
        try:
            return [plain(v) for v in override.sweep_iterator()]
        except HydraException:  # glob() of a key, not a group: Hydra says what is wrong
            return []
    return [override.value()]


def _check_values(override: Any, cfg: DictConfig, config_name: str) -> None:
    """Each value against the type hint of the target its key configures."""
    from hydra.utils import get_object

    from litnets.signatures import check_arguments

    key = override.key_or_group
    parent, _, leaf = key.rpartition(".")
    if parent:
        node = OmegaConf.select(cfg, parent, throw_on_resolution_failure=False)
        target = node.get("_target_") if OmegaConf.is_dict(node) else None
        try:
            target = get_object(target) if target else None
        except Exception:  # a _target_ that does not import: building it says so
            target = None
    else:
        target = top_level_options(config_name)
    if target is None:
        return
    for value in _values(override):
        if isinstance(value, str) and "${" in value:
            continue  # an interpolation: known once resolved
        check_arguments(target, {leaf: value}, parent)


def top_level_options(config_name: str) -> Any:
    """The dataclass typing a primary config's own keys (``seed``, ``top_k``, ...), if any."""
    if config_name == "train":
        from litnets.training import RunOptions

        return RunOptions
    if config_name == "benchmark":
        from litnets.benchmark import BenchmarkOptions

        return BenchmarkOptions
    if config_name in ("eval", "predict", "export"):
        from litnets import inference

        return {
            "eval": inference.CheckpointOptions,
            "predict": inference.PredictOptions,
            "export": inference.ExportOptions,
        }[config_name]
    return None
