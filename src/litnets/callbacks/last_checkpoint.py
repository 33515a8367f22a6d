"""``last.ckpt``: saved at a regular epoch cadence, at the end of training, and when asked to stop.

Two kinds of stop request: Ctrl+C or SIGTERM finish the epoch first; SIGUSR1, the signal a
SLURM cluster sends before pre-empting a job or ending it at its time limit
(``--signal=USR1@90``), stops after the current step, mid-epoch, and requeues the job.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerStatus

from litnets import cluster
from litnets.checkpoints import last_checkpoint
from litnets.errors import Preempted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
PREEMPT_SIGNALS = (signal.SIGUSR1,) if hasattr(signal, "SIGUSR1") else ()


class LastCheckpoint(ModelCheckpoint):
    """The checkpoint ``resume=`` continues from, and a graceful stop on Ctrl+C or SIGTERM.

    A stop request (Ctrl+C, ``kill``, a cluster's pre-emption) lets the current epoch
    finish, saves ``last.ckpt`` at its end and stops training: that is the very state a
    regular save holds, so resuming is exact, and at most part of one epoch is redone
    instead of up to ``every_n_epochs``. A second Ctrl+C stops at once (Lightning's
    ``KeyboardInterrupt`` path; the previous ``last.ckpt`` is kept); a second SIGTERM does
    not, since cluster managers send it more than once. Under DDP the ranks
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
        self.preempt_signal: int | None = None
        self._preempting = False
        """Set once every rank has agreed to stop for a pre-emption request."""
        self.stopped_by: str | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._previous_preempt_handlers: dict[int, Any] = {}

    # ---- signals ----------------------------------------------------------------------------

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before Lightning sets up its signal handlers, which then leave SIGUSR1 to this one:
        # Lightning's own SLURM handler saves an hpc_ckpt inside the signal handler,
        # wherever the step happens to be.
        if threading.current_thread() is threading.main_thread():
            for signum in PREEMPT_SIGNALS:
                previous = signal.signal(signum, self._request_preemption)
                self._previous_preempt_handlers[signum] = previous

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is not None:
            if signum != signal.SIGINT:  # SLURM's srun forwards a time limit's SIGTERM twice
                return
            self._restore_handlers()
            raise KeyboardInterrupt
        self.stop_signal = signum
        print(
            f"\nlitnets: {signal.Signals(signum).name}: finishing this epoch, saving "
            "last.ckpt, then stopping (Ctrl+C again stops at once)",
            file=sys.stderr,
            flush=True,
        )

    def _request_preemption(self, signum: int, frame: FrameType | None) -> None:
        self.preempt_signal = signum
        then = "requeueing the job" if cluster.can_requeue() else "stopping"
        print(
            f"\nlitnets: {signal.Signals(signum).name}: saving last.ckpt after this step, then "
            f"{then}",
            file=sys.stderr,
            flush=True,
        )

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers.clear()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.release_preemption_signal()

    def release_preemption_signal(self) -> None:
        """Put SIGUSR1's previous handler back: at the fit's end, and by the caller of a fit
        that raised, since Lightning's teardown then comes last and reinstates the handlers
        it found when fitting began (this one among them)."""
        for signum, handler in self._previous_preempt_handlers.items():
            signal.signal(signum, handler)
        self._previous_preempt_handlers.clear()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore_handlers()
        # A run shorter than the cadence, or ending between two saves, still leaves its
        # final state behind: the run can be extended (resume= with a larger max_epochs).
        self._save_unless_just_saved(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore_handlers()

    # ---- saving -------------------------------------------------------------------------------

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        """Between two Lightning calls: where a pre-emption request is carried out.

        ``last.ckpt`` then holds the exact point (the batch iterator's position, the RNG, the
        epoch's statistics so far), and the fit ends at once. The ranks of a DDP run agree
        first, so they all stop after the same step. After an epoch's last batch the epoch
        is finished first (validation, epoch-end hooks; ``on_train_epoch_end``): Lightning
        would skip them when resuming from a checkpoint saved at that point.
        """
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        requested = self.preempt_signal is not None
        if not trainer.strategy.reduce_boolean_decision(requested, all=False):
            return
        # From here on the ranks act alike, on this agreed flag, not on their own signal: one
        # arriving on a single rank during validation must not send it down another path.
        self._preempting = True
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # on_train_epoch_end stops, once the epoch is finished
        self._stop_for_preemption(trainer)
        raise Preempted(f"{self.stopped_by} at step {trainer.global_step}: saved last.ckpt")

    def _stop_for_preemption(self, trainer: L.Trainer) -> None:
        """Save ``last.ckpt`` and say why the fit stops. The run requeues its SLURM job once
        its record says where it stopped (``litnets.training.train``): SLURM ends the job
        when requeueing it. A rank that was not signalled itself stops as SIGUSR1 too."""
        self._save_unless_just_saved(trainer)
        self._restore_handlers()
        self.stopped_by = signal.Signals(self.preempt_signal or signal.SIGUSR1).name

    def _save_unless_just_saved(self, trainer: L.Trainer) -> None:
        """``last.ckpt`` now, unless the regular cadence has just saved this very step."""
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_none_monitor_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)  # the regular cadence
        if self._preempting:  # agreed by all ranks in on_train_batch_end
            self._stop_for_preemption(trainer)
            trainer.should_stop = True
            return
        requested = self.stop_signal is not None
        if not trainer.strategy.reduce_boolean_decision(requested, all=False):
            return
        self._save_unless_just_saved(trainer)
        name = signal.Signals(self.stop_signal).name if requested else None
        self.stopped_by = name or "a stop request on another rank"
        trainer.should_stop = True


def last_checkpoint_callbacks(trainer: L.Trainer) -> list[LastCheckpoint]:
    """The trainer's ``last.ckpt`` callbacks (stop requests, pre-emption)."""
    return [c for c in trainer.callbacks if isinstance(c, LastCheckpoint)]


@contextmanager
def repeated_sigterm_ignored(trainer: L.Trainer) -> Iterator[None]:
    """Around a fit and the writing of its record: a SIGTERM that repeats a stop request is
    ignored wherever it lands.

    srun forwards a time limit's SIGTERM more than once, and on a loaded node the repeat can
    come after training has ended. While training, ``_request_stop`` ignores repeats itself,
    but from ``on_train_end`` on the handlers it replaced are back, and from Lightning's
    teardown on the ones found before the fit: the default, which killed the process before
    ``metrics.json`` was written (seen in tests/test_slurm.py under the full suite). This
    handler is the one found before the fit, so it answers in that window. Any other SIGTERM
    is left as it was: inside a Lightning run Lightning's own handler has already taken it
    (it calls this one after itself); outside one it goes to the handler found before.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame: FrameType | None) -> None:
        stopping = any(
            callback.stop_signal == signal.SIGTERM
            for callback in last_checkpoint_callbacks(trainer)
        )
        if stopping or trainer.state.status == TrainerStatus.RUNNING:
            return
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # the default (or a handler set outside Python): die
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
