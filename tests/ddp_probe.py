"""A callback the DDP tests add by override: which training rows each rank saw in epoch 0.

DDP ranks are separate processes, so the record goes to ``<folder>/rank<r>.json``; the
test (another process again) compares the ranks with the training split.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class RecordSeenSamples(L.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
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
