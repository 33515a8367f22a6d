"""What the thin scripts share: user errors as one line, not a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from litnets.errors import LitnetsError


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
