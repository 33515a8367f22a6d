"""Callbacks the DDP tests add by override: what each rank saw and ended with.

Which training rows each rank saw in epoch 0, and its weights at the end of training (the
ranks see different rows, so equal weights mean the gradients were averaged). DDP ranks
are separate processes, so the records go to ``<folder>/rank<r>.json`` and
``<folder>/final<r>.json``; the test (another process again) compares them.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class RecordFinalWeights(L.Callback):
    """Only the end of training: no per-batch hook, so batches may come in chunks."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer, pl_module) -> None:
        record = {
            "automatic_optimization": pl_module.automatic_optimization,
            "steps_per_chunk": trainer.datamodule.steps_per_chunk,
            "global_step": trainer.global_step,
            "weights": {k: v.tolist() for k, v in pl_module.model.state_dict().items()},
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"final{trainer.global_rank}.json").write_text(json.dumps(record))


class RecordSeenSamples(RecordFinalWeights):
    def __init__(self, folder: str) -> None:
        super().__init__(folder)
        self.rows: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            self.rows.extend(batch[0].tolist())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch != 0:
            return
        record = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "seen": self.rows,
            "train": trainer.datamodule.splits["train"][0].tolist(),
        }
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
