"""Generated regression data: seed 001's sine curve and D2L's noisy linear model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from litnets.data.base import InMemoryDataModule, Split, _count


class SyntheticDataModule(InMemoryDataModule):
    """Generates ``n`` samples once under ``seed`` and holds out a test split."""

    task = "regression"

    def __init__(self, n: int = 1000, test_size: float | int = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n = n
        self.test_size = test_size

    @property
    def num_outputs(self) -> int:
        return 1

    def generate(self, generator: torch.Generator) -> Split:
        raise NotImplementedError

    def load(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed)
        x, y = self.generate(generator)
        n_test = _count(self.test_size, len(x), "data.test_size")
        order = torch.randperm(len(x), generator=generator)
        test, train = order[:n_test], order[n_test:]
        return {"train": (x[train], y[train]), "test": (x[test], y[test])}


class SineDataModule(SyntheticDataModule):
    """``n`` evenly spaced x in [-π, π] and y = sin(x), both shaped (n, 1)."""

    def __init__(self, n: int = 2000, **kwargs) -> None:
        super().__init__(n=n, **kwargs)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,)

    def generate(self, generator: torch.Generator) -> Split:
        x = torch.linspace(-math.pi, math.pi, self.n).unsqueeze(1)
        return x, torch.sin(x)


class LinearDataModule(SyntheticDataModule):
    """D2L's ``synthetic_data``: X ~ N(0, 1), y = Xw + b + N(0, noise²)."""

    def __init__(
        self,
        w: Sequence[float] = (2.0, -3.4),
        b: float = 4.2,
        noise: float = 0.01,
        n: int = 1000,
        **kwargs,
    ) -> None:
        super().__init__(n=n, **kwargs)
        self.w = torch.tensor(list(w), dtype=torch.float32)
        self.b = float(b)
        self.noise = noise

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (len(self.w),)

    def generate(self, generator: torch.Generator) -> Split:
        x = torch.randn(self.n, len(self.w), generator=generator)
        y = x @ self.w + self.b + self.noise * torch.randn(self.n, generator=generator)
        return x, y.unsqueeze(1)
