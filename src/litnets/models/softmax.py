"""Softmax regression (D2L 3.6/3.7): flatten, one Linear to the classes, N(0, 0.01) weights."""

from __future__ import annotations

from torch import Tensor, nn

from litnets.models.base import Architecture, flat_size


class SoftmaxRegression(Architecture):
    tasks = frozenset({"classification"})

    def __init__(self, input_shape: tuple[int, ...], num_outputs: int, init_std: float = 0.01):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(flat_size(input_shape), num_outputs))
        nn.init.normal_(self.net[1].weight, std=init_std)
        nn.init.zeros_(self.net[1].bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
