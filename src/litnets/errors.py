"""Errors a user can fix: the scripts print these as one line instead of a traceback."""

from __future__ import annotations

from omegaconf.errors import (
    InterpolationResolutionError,
    MissingMandatoryValue,
    OmegaConfBaseException,
)


class LitnetsError(Exception):
    """Base class: the message alone tells the user what is wrong and how to fix it."""


class ConfigError(LitnetsError):
    """A configuration value or combination that cannot work."""


class DataError(LitnetsError):
    """Missing, truncated or malformed dataset files."""


class CheckpointError(LitnetsError):
    """A checkpoint that is missing, unreadable, or from a different model or dataset."""


class DivergenceError(LitnetsError):
    """Training produced a NaN or infinite loss."""


class Preempted(Exception):
    """Raised between two steps on SIGUSR1 once ``last.ckpt`` holds that exact point: ends the
    fit at once (no epoch-end hooks for an unfinished epoch); the run is then resumed."""


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
