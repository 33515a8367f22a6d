"""Polynomial regression (seed 001): y = a + b·x + c·x² + d·x³ as one Linear over powers of x.

The model raises its scalar input to the powers itself, so the same sine dataset (raw x)
serves this model and an MLP, and prediction from a CSV of x values needs no feature step.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from litnets.errors import ConfigError
from litnets.models.base import Architecture


class Polynomial(Architecture):
    tasks = frozenset({"regression"})
    input_rank = 1

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, degree: int = 3):
        super().__init__()
        if input_shape != (1,) or num_outputs != 1:
            raise ConfigError(
                f"model Polynomial fits one scalar input to one output, but the data gives "
                f"inputs {tuple(input_shape)} and {num_outputs} outputs (use data=sine)"
            )
        self.register_buffer("powers", torch.arange(1, degree + 1, dtype=torch.float32))
        self.linear = nn.Linear(degree, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.pow(self.powers))

    def coefficients(self) -> list[float]:
        """[a, b, c, ...]: the constant first, then the coefficient of x, x², ..."""
        return [self.linear.bias.item(), *self.linear.weight.detach().squeeze(0).tolist()]

    def learned_parameters(self) -> dict[str, Any]:
        coefficients = self.coefficients()
        terms = [f"{coefficients[0]:.6g}"]
        for power, value in enumerate(coefficients[1:], start=1):
            sign = "-" if value < 0 else "+"
            variable = "x" if power == 1 else f"x^{power}"
            terms.append(f"{sign} {abs(value):.6g}*{variable}")
        return {"coefficients": coefficients, "equation": "y = " + " ".join(terms)}
