"""Check config values against the type hints of what they build, before building it.

``trainer.max_epochs=abc`` would otherwise reach Lightning and fail deep inside as an
``AssertionError``; comparing the value with ``Trainer.__init__``'s hint says what is wrong
in one line. Only hints made of plain scalars (``int``, ``float``, ``bool``, ``str``,
``None``, ``Literal``) are enforced: anything richer is accepted and left to the target.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, Union

from litnets.errors import ConfigError

_UNCHECKED = object()


def _accepts(hint: Any, value: Any) -> bool | object:
    """Whether ``value`` fits ``hint``; ``_UNCHECKED`` where the hint is beyond this check."""
    if hint is Any or hint is inspect.Parameter.empty:
        return _UNCHECKED
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        verdicts = [_accepts(arg, value) for arg in typing.get_args(hint)]
        if any(v is True for v in verdicts):
            return True
        return _UNCHECKED if any(v is _UNCHECKED for v in verdicts) else False
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return _UNCHECKED


def _flatten(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return [leaf for arg in typing.get_args(hint) for leaf in _flatten(arg)]
    return [hint]


def _describe(hint: Any) -> str:
    literals = [v for h in _flatten(hint) if typing.get_origin(h) is Literal for v in h.__args__]
    others = [
        "null" if h is type(None) else getattr(h, "__name__", str(h))
        for h in _flatten(hint)
        if typing.get_origin(h) is not Literal
    ]
    parts = list(dict.fromkeys(others))
    if literals:
        parts.insert(0, "one of " + ", ".join(repr(v) for v in dict.fromkeys(literals)))
    return " or ".join(parts)


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    function = target.__init__ if isinstance(target, type) else target
    try:
        return typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: nothing to check against
        return {}


def check_arguments(target: Callable[..., Any], arguments: Mapping[str, Any], where: str) -> None:
    """Raise ``ConfigError`` naming ``where.key`` if a value cannot fit the target's hint."""
    hints = _hints(target)
    for key, value in arguments.items():
        hint = hints.get(key, inspect.Parameter.empty)
        if _accepts(hint, value) is False:
            raise ConfigError(
                f"{where}{'.' if where else ''}{key} must be {_describe(hint)}, "
                f"got {value!r} ({type(value).__name__})"
            )
