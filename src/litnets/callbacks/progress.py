"""Lightning's TQDM progress bar, showing the training loss without an extra device sync,
and counting batches when they come several to a Lightning call."""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar

from litnets.data.batches import Chunk, Chunked


class ProgressBar(TQDMProgressBar):
    """Adds ``loss``: the task's step loss as last read at the logging interval.

    The task already reads the loss off the device at that interval (for the step log and
    the divergence guard) and keeps the Python float; ``self.log(..., prog_bar=True)``
    would instead hand the bar a device tensor to read at every refresh.

    With ``task.steps_per_execution`` above 1, Lightning's loop sees chunks of batches; the
    bar still counts batches, and refreshes after a chunk that passed a multiple of
    ``refresh_rate`` (at most once a chunk, and once every ``mininterval`` seconds).
    """

    handles_chunks = True
    _shown_at = -math.inf
    """When a chunk last refreshed the bar (``time.monotonic``): chunks refresh it at most
    every ``mininterval`` seconds (tqdm's own limit, 0.1 s by default). A refresh costs
    ≈ 0.2-0.3 ms in a real MNIST epoch; one per 32-batch chunk was ≈ 7.5 ms an epoch."""

    @property
    def total_train_batches(self) -> int | float:
        loader = self.trainer.train_dataloader
        return loader.num_batches if isinstance(loader, Chunked) else super().total_train_batches

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if not isinstance(batch, Chunk):
            return super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        # Lightning refreshes when the position is a multiple of refresh_rate; a chunk's last
        # position is that only every lcm(K, rate) batches (every 160 for K=32, rate 10).
        bar, rate = self.train_progress_bar, self.refresh_rate
        done = batch.first_index + len(batch)  # the bar's position: the chunk's last batch
        if bar is None or not self.is_enabled or bar.disable:
            return None
        now = time.monotonic()
        due = done // rate > batch.first_index // rate and now - self._shown_at >= bar.mininterval
        if due or done == bar.total:
            bar.n = done  # tqdm's own attribute, as Lightning's bar moves itself
            bar.set_postfix(self.get_metrics(trainer, pl_module))  # and refreshes it, once
            self._shown_at = now
        return None

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)  # the run dir's name says which run this is
        loss = getattr(pl_module, "last_step_loss", None)
        if loss is not None:
            metrics["loss"] = f"{loss:.4g}"
        return metrics
