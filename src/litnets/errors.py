"""Errors a user can fix: the scripts print these as one line instead of a traceback."""


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
