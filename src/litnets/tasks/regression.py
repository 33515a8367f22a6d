"""Regression: a configurable point loss, MSE / MAE / R² from torchmetrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, R2Score

from litnets.tasks.base import Task


class RegressionTask(Task):
    kind = "regression"
    monitor = "val/loss"
    monitor_mode = "min"
    losses: ClassVar[dict[str, Callable[..., Tensor]]] = {
        "mse": F.mse_loss,
        "l1": F.l1_loss,
        "huber": F.huber_loss,
        "smooth_l1": F.smooth_l1_loss,
    }

    def __init__(self, *args, target_mean: float = 0.0, target_std: float = 1.0, **kwargs) -> None:
        """``target_mean``/``target_std``: the model learns standardised targets (as a table's
        preprocessing fits them), and the task's outputs, loss and metrics are in the
        target's own units. Not saved: rebuilt from the data, as the model's sizes are."""
        super().__init__(*args, **kwargs)
        self.register_buffer("target_mean", torch.tensor(float(target_mean)), persistent=False)
        self.register_buffer("target_std", torch.tensor(float(target_std)), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x) * self.target_std + self.target_mean

    def make_extra_metrics(self) -> nn.ModuleDict:
        return nn.ModuleDict(
            {"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()}
        )

    def prepare_target(self, output: Tensor, target: Tensor) -> Tensor:
        return target.view_as(output)

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return output.flatten(), target.flatten()
