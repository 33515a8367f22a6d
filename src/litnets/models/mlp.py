"""Multi-layer perceptron: seeds 000 (4-10-3), 002 (784-300-100-10 + BatchNorm), 004."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from litnets.models.base import Architecture, flat_size, make_activation
from litnets.signatures import PositiveInt


class MLP(Architecture):
    """Flatten → [Linear → BatchNorm? → activation → Dropout?] × hidden → Linear."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_outputs: int,
        hidden_sizes: Sequence[PositiveInt] = (300, 100),
        activation: str = "relu",
        batchnorm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = flat_size(input_shape)
        for hidden in hidden_sizes:
            layers.append(nn.Linear(width, hidden))
            if batchnorm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(make_activation(activation))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
