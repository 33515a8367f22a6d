"""What every architecture declares, so a bad model × data pairing fails with a clear message."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import nn

from litnets.errors import ConfigError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str | None) -> nn.Module:
    """An activation layer by name; ``None`` means none (identity)."""
    key = "identity" if name is None else name.lower()
    if key not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[key]()


class Architecture(nn.Module):
    """Base of litnets models: plain ``nn.Module``s that know which data they can take.

    Constructors take ``input_shape`` and ``num_outputs`` from the datamodule, never from
    the user, so one model config serves every dataset it fits.
    """

    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    input_rank: ClassVar[int | None] = None
    """Required number of input dimensions per sample (``None``: any, inputs are flattened)."""

    @classmethod
    def check_compatible(cls, task: str, input_shape: tuple[int, ...]) -> None:
        name = cls.__name__
        if task not in cls.tasks:
            raise ConfigError(
                f"model {name} does {' and '.join(sorted(cls.tasks))}, but the data is a "
                f"{task} dataset: pick a {task} model or another dataset"
            )
        if cls.input_rank is not None and len(input_shape) != cls.input_rank:
            raise ConfigError(
                f"model {name} needs {cls.input_rank}-D samples, but the data gives samples "
                f"of shape {tuple(input_shape)}"
            )

    def learned_parameters(self) -> dict[str, Any]:
        """A readable summary of what was learned (weights, an equation); empty by default."""
        return {}


def flat_size(input_shape: tuple[int, ...]) -> int:
    return math.prod(input_shape)
