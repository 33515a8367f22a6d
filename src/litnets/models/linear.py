"""Linear regression (D2L 3.3): one Linear layer, N(0, 0.01) weights and zero bias."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from litnets.models.base import Architecture, flat_size


class LinearRegression(Architecture):
    tasks = frozenset({"regression"})

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, init_std: float = 0.01):
        super().__init__()
        self.linear = nn.Linear(flat_size(input_shape), num_outputs)
        nn.init.normal_(self.linear.weight, std=init_std)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1))

    def learned_parameters(self) -> dict[str, Any]:
        weight = self.linear.weight.detach().cpu()
        bias = self.linear.bias.detach().cpu()
        return {
            "w": weight.squeeze(0).tolist() if len(weight) == 1 else weight.tolist(),
            "b": bias.item() if len(bias) == 1 else bias.tolist(),
        }
