"""Classification: cross-entropy over class logits, accuracy per epoch."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from litnets.tasks.base import Task
from litnets.tasks.metrics import LossAccuracy


class ClassificationTask(Task):
    kind = "classification"
    monitor = "val/acc"
    monitor_mode = "max"
    losses: ClassVar[dict[str, Callable[..., Tensor]]] = {
        "cross_entropy": F.cross_entropy,
        "nll": F.nll_loss,
    }

    def __init__(self, *args, num_classes: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Filled during testing only; the test-end pictures read `test_confusion`.
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion: Tensor | None = None

    def make_stats(self) -> LossAccuracy:
        return LossAccuracy(accuracy=True)

    def on_test_epoch_start(self) -> None:
        self.confusion.reset()

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        # compute() is collective under DDP: every rank takes part, rank 0 draws it.
        self.test_confusion = self.confusion.compute().cpu()

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        output = self._evaluate("test", batch)
        self.confusion.update(output.argmax(dim=1), batch[1])
