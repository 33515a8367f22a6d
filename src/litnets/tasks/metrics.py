"""Epoch statistics accumulated on the device: no host sync inside the training loop.

A torchmetrics ``update`` through ``MetricCollection`` costs far more than the few tensor
additions a training step needs; these metrics keep three scalars on the device and let
torchmetrics do what it is good at: resetting, and summing across DDP ranks at epoch end.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from litnets.tasks.attributes import PlainAttributes


class LossAccuracy(PlainAttributes, Metric):
    """Sample-weighted mean loss and (for classifiers) top-1 accuracy over an epoch."""

    plain_attributes = frozenset({"_computed", "_update_count"})  # written by every update

    full_state_update = False
    higher_is_better = None

    def __init__(self, accuracy: bool = True) -> None:
        super().__init__()
        self.accuracy = accuracy
        self.add_state("loss_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("correct", torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, loss: Tensor, output: Tensor, target: Tensor) -> None:
        self.accumulate(self.metric_state, loss, output, target)

    def accumulate(
        self, sums: dict[str, Tensor], loss: Tensor, output: Tensor, target: Tensor
    ) -> None:
        """Add one batch to ``sums`` in place: this metric's own state, or tensors shaped like
        it that live elsewhere (a CUDA graph's, merged in with ``merge_state``)."""
        n = target.shape[0]
        # In place: no autograd, and no nn.Module attribute assignment per call.
        sums["loss_sum"].add_(loss.detach(), alpha=n)
        sums["count"].add_(n)
        if self.accuracy:
            sums["correct"].add_((output.detach().argmax(dim=1) == target).sum())

    def merge_state(self, incoming_state: dict[str, Any] | Metric) -> None:
        """torchmetrics' merge of summed state, counted as an update.

        torchmetrics counts only ``update`` calls (``compute`` warns when there were none)
        and caches ``compute``'s value until the next one; merged sums are batches too.
        """
        super().merge_state(incoming_state)
        # torchmetrics' own bookkeeping (1.x; no public setter), as its update wrapper does
        # it; tests/test_tasks.py pins both effects.
        self._update_count += 1
        self._computed = None

    def compute(self) -> dict[str, Tensor]:
        count = self.count.clamp(min=1)
        result = {"loss": (self.loss_sum / count).float()}
        if self.accuracy:
            result["acc"] = self.correct.float() / count
        return result
