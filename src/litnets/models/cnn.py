"""Seed 001's CNN: three 5×5 convolutions (32, 32, 64) with 2×2 max-pooling, then 64 → classes.

Channels and image size follow the datamodule, so it runs on CIFAR-10 (3×32×32, the
tutorial's 1024 → 64 → 10 head) and on MNIST (1×28×28, a 576 → 64 → 10 head).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from litnets.models.base import Architecture, make_activation
from litnets.signatures import PositiveInt


class CNN(Architecture):
    tasks = frozenset({"classification"})
    input_rank = 3

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        channels: Sequence[PositiveInt] = (32, 32, 64),
        kernel_size: PositiveInt = 5,
        hidden_size: PositiveInt = 64,
        activation: str | None = None,
    ) -> None:
        super().__init__()
        in_channels, height, width = input_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                make_activation(activation),
                nn.MaxPool2d(2),
            ]
            in_channels, height, width = out_channels, height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden_size),
            make_activation(activation),
            nn.Linear(hidden_size, num_outputs),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
