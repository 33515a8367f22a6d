"""How many optimizer steps one Lightning ``training_step`` takes: ``task.steps_per_execution``.

Lightning spends ≈ 0.3-0.5 ms of CPU time per batch on its loop (hook dispatch, progress
tracking, the fetcher). For the tutorials' small models that is a third of a CPU step and
nearly all of a GPU step. Keras' answer is ``steps_per_execution``; here the in-memory batch
iterator hands Lightning chunks of K batches (``litnets.data.batches.Chunked``) and the task
runs them as K ordinary steps, each through ``manual_backward`` and the wrapped optimizer's
``step`` (so DDP gradient sync, precision plugins and the global step are as before).

Anything that must see each batch from Lightning's side rules chunks out: ``auto`` then
falls back to one step per call and says why in one line; an explicit K is an error.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.utilities.model_helpers import is_overridden

from litnets.errors import ConfigError
from litnets.precision import QuietStepHooks

if TYPE_CHECKING:
    from litnets.tasks.base import Task

StepsPerExecution = int | Literal["auto", "epoch"]
AUTO_STEPS = 32
"""``auto``'s K: Lightning's per-call cost shrinks 32-fold, the progress bar still moves."""
BATCH_HOOKS = ("on_train_batch_start", "on_train_batch_end")
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
"""The callback hooks ``manual_backward`` and the wrapped optimizer's ``step`` dispatch."""


def check_requested(value: Any) -> StepsPerExecution:
    """``task.steps_per_execution`` as given: a positive integer, ``auto`` or ``epoch``."""
    if value in ("auto", "epoch") or (isinstance(value, int) and not isinstance(value, bool)
                                       and value >= 1):  # fmt: skip
        return value
    raise ConfigError(
        f"task.steps_per_execution must be a positive integer, auto or epoch, got {value!r}"
    )


def acts_on_every_batch(callback: L.Callback) -> bool:
    """Whether ``callback`` needs Lightning to call it after each optimizer step."""
    if getattr(callback, "handles_chunks", False):  # litnets' own, chunk-aware callbacks
        return False
    if isinstance(callback, ModelCheckpoint):
        # Private attributes (Lightning 2.x, pinned by tests/test_execution.py): a checkpoint
        # saved every N steps or every T seconds is taken in on_train_batch_end.
        return bool(callback._every_n_train_steps) or callback._train_time_interval is not None
    return any(is_overridden(hook, callback, L.Callback) for hook in BATCH_HOOKS)


def step_hook_callbacks(trainer: L.Trainer) -> list[L.Callback]:
    """The callbacks that override one of ``STEP_HOOKS``, in the trainer's order."""
    return [
        callback
        for callback in trainer.callbacks
        if any(is_overridden(hook, callback, L.Callback) for hook in STEP_HOOKS)
    ]


def task_has_step_hooks(task: L.LightningModule) -> bool:
    """Whether the task itself overrides one of ``STEP_HOOKS``."""
    return any(is_overridden(hook, task, L.LightningModule) for hook in STEP_HOOKS)


def quiet_step_hooks(trainer: L.Trainer, task: Task) -> None:
    """Lightning's 32-bit precision plugin for this fit, or ``QuietStepHooks`` where it acts
    alike: a lean step, and no callback and not the task overriding one of ``STEP_HOOKS``.

    Chosen afresh at each fit's start (both are stateless), and only in place of exactly
    one of the two: mixed, double and FSDP precision keep their own plugins.
    """
    strategy = trainer.strategy
    if type(strategy.precision_plugin) not in (Precision, QuietStepHooks):
        return
    hooked = step_hook_callbacks(trainer) or task_has_step_hooks(task)
    quiet = not task.automatic_optimization and not hooked
    strategy.precision_plugin = QuietStepHooks() if quiet else Precision()


def restore_step_hooks(trainer: L.Trainer) -> None:
    """Lightning's own plugin back at a fit's end, for whatever the trainer runs next."""
    if type(trainer.strategy.precision_plugin) is QuietStepHooks:
        trainer.strategy.precision_plugin = Precision()


def listed_within_steps(trainer: L.Trainer) -> list[L.Callback]:
    """What ``trainer.callbacks`` holds during a training step: ``step_hook_callbacks`` and
    the progress bar, in the trainer's order.

    The progress bar stays so that ``trainer.progress_bar_callback`` never changes: Lightning's
    ``RichProgressBar`` reads it from its refresh thread, at any moment, and that thread died
    on an ``AssertionError`` (a traceback on stderr, the bar frozen) when a step had narrowed
    it away. Its step hooks are ``Callback``'s empty ones, a few microseconds a step.
    """
    bar = trainer.progress_bar_callback
    hooked = step_hook_callbacks(trainer)
    return [callback for callback in trainer.callbacks if callback is bar or callback in hooked]


@contextmanager
def step_hooks_only_for(trainer: L.Trainer, callbacks: list[L.Callback]) -> Iterator[None]:
    """Within the block, Lightning dispatches callback hooks only to ``callbacks``.

    ``manual_backward`` and the optimizer's ``step`` call each of ``STEP_HOOKS`` on every
    callback, each call wrapped in a profiler context with the callback's state-key string:
    with the default seven callbacks, none of which overrides them, that was ≈ 0.12 ms a
    step, 7 % of a CPU MNIST epoch, spent calling ``Callback``'s empty methods (where no
    callback overrides them, ``quiet_step_hooks`` now skips the dispatch altogether; this
    serves the runs where one does). Narrowing
    ``trainer.callbacks`` to ``listed_within_steps`` for the training step (and restoring it
    after) keeps every hook that does something, in the same order, at the same moment.
    What is read from the list meanwhile still finds what it looks for: the progress bar
    (read from Rich's refresh thread) is kept, and litnets' signal handlers only set a flag
    that is acted on between Lightning calls, where checkpoints are saved.
    """
    every = trainer.callbacks
    trainer.callbacks = callbacks
    try:
        yield
    finally:
        trainer.callbacks = every


def automatic_optimization_need(trainer: L.Trainer, task: Task) -> str | None:
    """What keeps this run on Lightning's automatic optimization (``Task._steps_lean``)."""
    checks = [
        (not task.lean_step, "task.lean_step=false"),
        (bool(trainer.gradient_clip_val), "gradient clipping (trainer.gradient_clip_val)"),
        (trainer.accumulate_grad_batches != 1, "trainer.accumulate_grad_batches"),
    ]
    return next((reason for needed, reason in checks if needed), None)


def per_batch_need(trainer: L.Trainer, task: Task) -> str | None:
    """What in this run needs one optimizer step per Lightning call, if anything."""
    from litnets.data.base import InMemoryDataModule

    if need := automatic_optimization_need(trainer, task):
        return need
    limit = trainer.limit_train_batches
    datamodule = trainer.datamodule
    checks = [
        (
            not (isinstance(trainer.val_check_interval, float) and trainer.val_check_interval == 1),
            "validation within an epoch (trainer.val_check_interval)",
        ),
        (not (isinstance(limit, float) and limit == 1), "trainer.limit_train_batches"),
        (bool(trainer.overfit_batches), "trainer.overfit_batches"),
        (
            not isinstance(datamodule, InMemoryDataModule),
            "a datamodule that is not litnets' InMemoryDataModule",
        ),
        (
            isinstance(datamodule, InMemoryDataModule) and not datamodule.can_chunk,
            "data.loader=torch (batches streamed by a DataLoader)",
        ),
    ]
    if need := next((reason for needed, reason in checks if needed), None):
        return need
    for callback in trainer.callbacks:
        if acts_on_every_batch(callback):
            return f"the callback {type(callback).__name__} (it acts on every batch)"
    return None


def plan(requested: StepsPerExecution, trainer: L.Trainer, task: Task) -> int | None:
    """Batches per Lightning call for this fit (``None``: a whole epoch), checked."""
    if requested == 1:
        return 1
    need = per_batch_need(trainer, task)
    if need is None:
        return {"auto": AUTO_STEPS, "epoch": None}.get(requested, requested)  # type: ignore[arg-type]
    if requested != "auto":
        raise ConfigError(
            f"task.steps_per_execution={requested} cannot be honoured because of {need}, "
            "which needs one optimizer step per Lightning call: use auto or 1"
        )
    if trainer.is_global_zero:
        print(
            f"litnets: task.steps_per_execution=auto: one optimizer step per Lightning call, "
            f"because of {need}",
            file=sys.stderr,
        )
    return 1


def optimizer_steps(trainer: L.Trainer) -> int | float:
    """Lightning's ``estimated_stepping_batches``, counted in batches when they come in chunks.

    Lightning counts what its loop iterates; with chunks that is chunks, and a one-cycle
    schedule sized by it would end ``K`` times too early.
    """
    from litnets.data.batches import Chunked

    estimate = trainer.estimated_stepping_batches  # also loads the training batches
    loader = trainer.train_dataloader
    if not isinstance(loader, Chunked) or trainer.max_epochs == -1:
        return estimate
    steps = loader.num_batches * max(trainer.max_epochs or 1, 1)
    return min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps
