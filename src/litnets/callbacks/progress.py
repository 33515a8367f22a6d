"""Lightning's TQDM progress bar, showing the training loss without an extra device sync."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Adds ``loss``: the task's step loss as last read at the logging interval.

    The task already reads the loss off the device at that interval (for the step log and
    the divergence guard) and keeps the Python float; ``self.log(..., prog_bar=True)``
    would instead hand the bar a device tensor to read at every refresh.
    """

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run dir's name says which run this is
        loss = getattr(pl_module, "last_step_loss", None)
        if loss is not None:
            metrics["loss"] = f"{loss:.4g}"
        return metrics
