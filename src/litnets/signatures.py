"""Check config values against the type hints of what they build, before building it.

``trainer.max_epochs=abc`` would otherwise reach Lightning and fail deep inside as an
``AssertionError``; comparing the value with ``Trainer.__init__``'s hint says what is wrong
in one line. Only hints made of plain scalars (``int``, ``float``, ``bool``, ``str``,
``None``, ``Literal``), and lists of them, are enforced: anything richer is accepted and
left to the target.
``PositiveInt`` and ``PositiveFloat`` (``Annotated`` hints) add a lower bound, and
``STRICTER_HINTS`` adds litnets' own hints to third-party targets (Lightning takes
``check_val_every_n_epoch=0`` and fails later on a modulo by zero).
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Annotated, Any, Literal, Union

from litnets.errors import ConfigError

_UNCHECKED = object()


@dataclass(frozen=True)
class Positive:
    """``Annotated`` marker: the number must be above zero."""

    description: str


PositiveInt = Annotated[int, Positive("a positive integer")]
PositiveFloat = Annotated[float, Positive("a positive number")]

STRICTER_HINTS: dict[str, dict[str, Any]] = {
    "lightning.pytorch.trainer.trainer.Trainer": {
        "check_val_every_n_epoch": PositiveInt | None,
        "accumulate_grad_batches": PositiveInt,
        "num_nodes": PositiveInt,
    },
    "torch.optim.optimizer.Optimizer": {"lr": PositiveFloat},
    # both divide by these when stepped, mid-training, so 0 was a ZeroDivisionError there
    "torch.optim.lr_scheduler.StepLR": {"step_size": PositiveInt},
    "torch.optim.lr_scheduler.CosineAnnealingLR": {"T_max": PositiveInt},
}
"""Hints litnets adds to a target, by the qualified name of the target or one of its bases."""


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
    if (item_hint := _item_hint(hint)) is not None:
        if not isinstance(value, list | tuple):  # a string is a sequence, but not of these
            return False
        verdicts = [_accepts(item_hint, item) for item in value]
        if any(v is False for v in verdicts):
            return False
        return True if all(v is True for v in verdicts) else _UNCHECKED
    if origin is Annotated:
        base, *markers = typing.get_args(hint)
        fits = _accepts(base, value)
        positive = all(value > 0 for m in markers if isinstance(m, Positive)) if fits else True
        return fits if fits is not True else positive
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return _UNCHECKED


def _item_hint(hint: Any) -> Any | None:
    """X for a list of any length: ``list[X]``, ``Sequence[X]`` or ``tuple[X, ...]`` (a config
    gives each as a list); ``None`` for any other hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, collections.abc.Sequence) and len(args) == 1:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


def _flatten(hint: Any) -> list[Any]:
    if typing.get_origin(hint) in (Union, types.UnionType):
        return [leaf for arg in typing.get_args(hint) for leaf in _flatten(arg)]
    return [hint]


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Annotated:
        base, *markers = typing.get_args(hint)
        described = [m.description for m in markers if isinstance(m, Positive)]
        return described[0] if described else _describe(base)
    if (item_hint := _item_hint(hint)) is not None:
        return f"a list, each item {_describe(item_hint)}"
    literals = [v for h in _flatten(hint) if typing.get_origin(h) is Literal for v in h.__args__]
    others = [
        "null" if h is type(None) else _describe(h) if typing.get_origin(h) else h.__name__
        for h in _flatten(hint)
        if typing.get_origin(h) is not Literal
    ]
    parts = list(dict.fromkeys(others))
    if literals:
        parts.insert(0, "one of " + ", ".join(repr(v) for v in dict.fromkeys(literals)))
    return " or ".join(parts)


def _function_hints(function: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:  # unresolvable forward references: nothing to check against
        return {}


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    """The target's parameter hints; for a class, its bases' too (``**kwargs`` passed up)."""
    hints: dict[str, Any] = {}
    if is_dataclass(target):  # each field's hint read in its own class's module
        hints = _function_hints(target)
    elif isinstance(target, type):
        for base in reversed(target.__mro__):  # a subclass's own hint wins
            if "__init__" in vars(base):
                hints |= _function_hints(base.__init__)
    else:
        hints = _function_hints(target)
    hints.pop("return", None)
    for base in getattr(target, "__mro__", (target,)):
        name = f"{getattr(base, '__module__', '')}.{getattr(base, '__qualname__', '')}"
        hints |= STRICTER_HINTS.get(name, {})
    return hints


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


def plain(node: Any) -> Any:
    """A config node as plain Python containers, interpolations resolved; anything else as is.

    Here, not in ``litnets.build``, so checks need no Lightning; OmegaConf is imported when
    called, so ``litnets.models`` (and an exported model) load without it.
    """
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def check_options(cfg: Mapping[str, Any], typed: type) -> None:
    """A config's own top-level keys against ``typed``, a dataclass of their hints: what a
    command reads from its primary config (``seed``, ``epochs``, ``top_k``, ...)."""
    options = {f.name: plain(cfg[f.name]) for f in fields(typed) if f.name in cfg}
    check_arguments(typed, options, where="")
