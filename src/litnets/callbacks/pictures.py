"""TensorBoard pictures: the figures the tutorials draw, made at fit start or test end only.

Each callback is one entry of ``conf/callbacks/default.yaml`` and draws nothing when there
is no TensorBoard logger, when the data does not suit it, or when ``enabled`` is false
(the top-level ``pictures=false`` switches them all off).
"""

from __future__ import annotations

import json
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

from litnets import plots


class TensorBoardPicture(L.Callback):
    """Base: finds the TensorBoard writer (rank zero only) and adds figures to it."""

    def __init__(self, enabled: bool = True, num_samples: int = 32) -> None:
        self.enabled = enabled
        self.num_samples = num_samples

    def writer(self, trainer: L.Trainer) -> Any | None:
        if not self.enabled or not trainer.is_global_zero:
            return None
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                return logger.experiment
        return None

    def add_figure(self, trainer: L.Trainer, tag: str, figure: Any) -> None:
        self.writer(trainer).add_figure(tag, figure, global_step=trainer.global_step, close=True)

    @staticmethod
    def is_image_data(trainer: L.Trainer) -> bool:
        return len(trainer.datamodule.input_shape) == 3

    def samples(self, trainer: L.Trainer, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = trainer.datamodule.splits[split]
        return x[: self.num_samples], y[: self.num_samples]

    @staticmethod
    def names(trainer: L.Trainer, labels: torch.Tensor) -> list[str]:
        classes = trainer.datamodule.class_names
        return [classes[i] if classes else str(i) for i in labels.tolist()]


class TrainingSamples(TensorBoardPicture):
    """A grid of training images with their labels, when training starts (seeds 002, 003)."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.writer(trainer) is None or not self.is_image_data(trainer):
            return
        x, y = self.samples(trainer, "train")
        if pl_module.kind == "classification":
            self.add_figure(trainer, "samples/train", plots.image_grid(x, self.names(trainer, y)))


class TestPredictions(TensorBoardPicture):
    """Test images captioned true → predicted, mistakes in red (D2L's ``predict_ch3``)."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.writer(trainer) is None or not self.is_image_data(trainer):
            return
        if pl_module.kind != "classification":
            return
        x, y = self.samples(trainer, "test")
        with torch.no_grad():
            predicted = pl_module(x.to(pl_module.device)).argmax(dim=1).cpu()
        y = y.cpu()
        titles = [
            f"{true}\n→ {pred}"
            for true, pred in zip(
                self.names(trainer, y), self.names(trainer, predicted), strict=True
            )
        ]
        wrong = (predicted != y).tolist()
        self.add_figure(trainer, "test/predictions", plots.image_grid(x, titles, wrong))


class ConfusionMatrix(TensorBoardPicture):
    """The test set's confusion matrix (torchmetrics), with class names."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.writer(trainer) is None or pl_module.kind != "classification":
            return
        matrix = pl_module.confusion.compute()
        names = trainer.datamodule.class_names or [str(i) for i in range(len(matrix))]
        self.add_figure(trainer, "test/confusion_matrix", plots.confusion_matrix(matrix, names))


class RegressionFit(TensorBoardPicture):
    """Data and fitted curve (or predicted vs true), and what the model learned, as text."""

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None or pl_module.kind != "regression":
            return
        x, y = trainer.datamodule.splits["test"]
        with torch.no_grad():
            predicted = pl_module(x.to(pl_module.device))
        learned = pl_module.model.learned_parameters()
        title = learned.get("equation", "test set: model against data")
        self.add_figure(
            trainer, "test/fit", plots.regression_fit(x, y.view_as(predicted), predicted, title)
        )
        if learned:
            text = "\n".join(f"    {key}: {json.dumps(value)}" for key, value in learned.items())
            writer.add_text("model/learned", text, global_step=trainer.global_step)


class ModelText(TensorBoardPicture):
    """The layer table and the module tree as text, when fitting starts."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        writer = self.writer(trainer)
        if writer is None:
            return
        summary = str(ModelSummary(pl_module, max_depth=3))
        text = "\n".join(
            "    " + line for line in (summary + "\n\n" + repr(pl_module.model)).splitlines()
        )
        writer.add_text("model/summary", text, global_step=0)
