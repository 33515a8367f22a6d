"""What the thin scripts share: user errors as one line, not a traceback."""

from __future__ import annotations

import difflib
import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from litnets.config import CONFIG_DIR
from litnets.errors import LitnetsError


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
                print(
                    f"litnets: error: unknown {key} option {choice!r}; {hint}"
                    f"choose one of: {', '.join(options)}",
                    file=sys.stderr,
                )
                sys.exit(2)


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print a ``LitnetsError`` as ``litnets: error: ...`` and exit 2.

    ``HYDRA_FULL_ERROR=1`` shows the full traceback instead, as it does for Hydra's errors.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LitnetsError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"litnets: error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
