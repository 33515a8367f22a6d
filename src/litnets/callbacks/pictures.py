"""TensorBoard pictures: the figures the tutorials draw, made at fit start or test end only.

Each picture is a switch of ``callbacks.pictures`` in ``conf/callbacks/default.yaml``; none
is drawn without a TensorBoard logger, for data it does not suit, or with ``pictures=false``.
"""

from __future__ import annotations

import json
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.model_summary import ModelSummary

from litnets import plots


class Pictures(L.Callback):
    """Every TensorBoard picture of a run, each switchable on its own.

    One callback rather than one per picture: Lightning calls every hook of every callback
    on every step, and each extra callback costs microseconds per step for nothing.
    """

    def __init__(
        self,
        enabled: bool = True,
        num_samples: int = 32,
        training_samples: bool = True,
        test_predictions: bool = True,
        confusion_matrix: bool = True,
        regression_fit: bool = True,
        model_text: bool = True,
    ) -> None:
        self.enabled = enabled
        self.num_samples = num_samples
        self.draw = {
            "training_samples": training_samples,
            "test_predictions": test_predictions,
            "confusion_matrix": confusion_matrix,
            "regression_fit": regression_fit,
            "model_text": model_text,
        }

    # ---- hooks -------------------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.wanted(trainer, "model_text"):
            self.add_model_text(trainer, pl_module)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        images = self.is_image_data(trainer) and pl_module.kind == "classification"
        if images and self.wanted(trainer, "training_samples"):
            x, y = self.samples(trainer, "train")
            self.add_figure(trainer, "samples/train", plots.image_grid(x, self.names(trainer, y)))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if pl_module.kind == "classification":
            if self.is_image_data(trainer) and self.wanted(trainer, "test_predictions"):
                self.add_test_predictions(trainer, pl_module)
            if self.wanted(trainer, "confusion_matrix") and pl_module.test_confusion is not None:
                matrix = pl_module.test_confusion
                names = trainer.datamodule.class_names or [str(i) for i in range(len(matrix))]
                figure = plots.confusion_matrix(matrix, names)
                self.add_figure(trainer, "test/confusion_matrix", figure)
        elif self.wanted(trainer, "regression_fit"):
            self.add_regression_fit(trainer, pl_module)

    # ---- pictures ----------------------------------------------------------------------------
    def add_test_predictions(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Test images captioned true → predicted, mistakes in red (D2L's ``predict_ch3``)."""
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

    def add_regression_fit(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Data and fitted curve (or predicted vs true), and what the model learned, as text."""
        data = trainer.datamodule
        x, y = data.sample("test", data.num_samples("test"))
        with torch.no_grad():
            predicted = pl_module(x.to(pl_module.device))
        learned = pl_module.model.learned_parameters()
        title = learned.get("equation", "test set: model against data")
        figure = plots.regression_fit(x, y.view_as(predicted), predicted, title)
        self.add_figure(trainer, "test/fit", figure)
        if learned:
            text = "\n".join(f"    {key}: {json.dumps(value)}" for key, value in learned.items())
            self.writer(trainer).add_text("model/learned", text, global_step=trainer.global_step)

    def add_model_text(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """The layer table and the module tree as text."""
        summary = str(ModelSummary(pl_module, max_depth=3))
        lines = (summary + "\n\n" + repr(pl_module.model)).splitlines()
        text = "\n".join("    " + line for line in lines)
        self.writer(trainer).add_text("model/summary", text, global_step=0)

    # ---- helpers -----------------------------------------------------------------------------
    def wanted(self, trainer: L.Trainer, picture: str) -> bool:
        return self.draw[picture] and self.writer(trainer) is not None

    def writer(self, trainer: L.Trainer) -> Any | None:
        """The TensorBoard ``SummaryWriter`` on rank zero, if there is one and pictures are on."""
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
        return trainer.datamodule.sample(split, self.num_samples)

    @staticmethod
    def names(trainer: L.Trainer, labels: torch.Tensor) -> list[str]:
        classes = trainer.datamodule.class_names
        return [classes[i] if classes else str(i) for i in labels.tolist()]
