"""``last.ckpt``: saved at a regular epoch cadence, at the end of training, and when asked to stop."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from litnets.checkpoints import last_checkpoint

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class LastCheckpoint(ModelCheckpoint):
    """The checkpoint ``resume=`` continues from, and a graceful stop on Ctrl+C or SIGTERM.

    A stop request (Ctrl+C, ``kill``, a cluster's pre-emption) lets the current epoch
    finish, saves ``last.ckpt`` at its end and stops training: that is the very state a
    regular save holds, so resuming is exact, and at most part of one epoch is redone
    instead of up to ``every_n_epochs``. A second Ctrl+C stops at once (Lightning's
    ``KeyboardInterrupt`` path; the previous ``last.ckpt`` is kept). Under DDP the ranks
    agree at the epoch end, so one signalled rank stops them all together.
    """

    def __init__(self, run_dir: str, every_n_epochs: int = 1) -> None:
        path = last_checkpoint(run_dir)  # where resume= and the run summary look for it
        super().__init__(
            dirpath=path.parent,
            filename=path.stem,
            monitor=None,
            save_top_k=1,
            every_n_epochs=every_n_epochs,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
        )
        self.stop_signal: int | None = None
        self.stopped_by: str | None = None
        self._previous_handlers: dict[int, Any] = {}

    # ---- signals ----------------------------------------------------------------------------

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            self._restore_handlers()
            raise KeyboardInterrupt
        self.stop_signal = signum
        print(
            f"\nlitnets: {signal.Signals(signum).name}: finishing this epoch, saving "
            "last.ckpt, then stopping (Ctrl+C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        # A run shorter than the cadence, or ending between two saves, still leaves its
        # final state behind: the run can be extended (resume= with a larger max_epochs).
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    # ---- saving -------------------------------------------------------------------------------

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the regular cadence
        requested = self.stop_signal is not None
        if not trainer.strategy.reduce_boolean_decision(requested, all=False):
            return
        if not self._should_skip_saving_checkpoint(trainer):  # unless the cadence just saved
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))
        name = signal.Signals(self.stop_signal).name if requested else None
        self.stopped_by = name or "a stop request on another rank"
        trainer.should_stop = True
