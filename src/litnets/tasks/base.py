"""The shared LightningModule: one training loop for every model, metrics logged per epoch.

Subclasses say which loss and metrics a task uses; everything about the loop lives here:
device-side epoch statistics, step logging at an interval (the only per-step host sync),
a divergence check at that same interval, optimizers and schedulers from config, and the
lean optimizer step.
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn
from torchmetrics import MaxMetric, MinMetric

from litnets.data.base import InMemoryDataModule
from litnets.data.batches import Batches, Chunk, Chunked
from litnets.errors import ConfigError, DivergenceError
from litnets.models.base import Architecture
from litnets.tasks import execution
from litnets.tasks.attributes import PlainAttributes
from litnets.tasks.execution import StepsPerExecution
from litnets.tasks.metrics import LossAccuracy

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SPLITS = ("train", "val", "test")

if TYPE_CHECKING:
    from litnets.tasks.graphs import StepGraph


def epoch_time(seconds: list[float]) -> dict[str, float]:
    """The first epoch's seconds (warm-up, compilation) and the median of the rest."""
    if not seconds:
        return {}
    return {"first": seconds[0], "steady": statistics.median(seconds[1:] or seconds)}


@dataclass
class SchedulerSpec:
    """A learning-rate scheduler factory and how Lightning should step it."""

    factory: Callable[..., Any]
    interval: str = "epoch"
    frequency: int = 1
    monitor: str | None = None


class Task(PlainAttributes, L.LightningModule):
    """Trains ``model`` with ``loss``; logs ``{split}/loss`` and friends once per epoch."""

    # Lightning writes it twice per hook dispatch: 12 times a step where the step hooks are
    # dispatched (litnets.precision.QuietStepHooks leaves them out where nothing has one).
    plain_attributes = frozenset({"_current_fx_name"})

    kind: ClassVar[str]
    monitor: ClassVar[str]
    """The validation metric that picks the best checkpoint."""
    monitor_mode: ClassVar[str]
    losses: ClassVar[dict[str, Callable[..., Tensor]]]

    def __init__(
        self,
        model: Architecture,
        optimizer: OptimizerFactory,
        scheduler: SchedulerSpec | None = None,
        loss: str | None = None,
        loss_kwargs: dict[str, Any] | None = None,
        check_finite_every_n_steps: int = 50,
        lean_step: bool = True,
        steps_per_execution: StepsPerExecution = "auto",
        cuda_graph: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # The composed run config travels in every checkpoint, so evaluation, prediction
        # and export rebuild the same model and data from the checkpoint alone.
        self.save_hyperparameters({"config": config or {}}, logger=False)
        loss = loss or next(iter(self.losses))
        if loss not in self.losses:
            raise ConfigError(
                f"unknown {self.kind} loss {loss!r}; choose one of {', '.join(self.losses)}"
            )
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_spec = scheduler
        self.loss_fn = partial(self.losses[loss], **(loss_kwargs or {}))
        self.check_finite_every_n_steps = check_finite_every_n_steps
        self.lean_step = lean_step
        self.steps_per_execution = execution.check_requested(steps_per_execution)
        self.cuda_graph = cuda_graph
        self._step_graph: StepGraph | None = None
        # Registered as attributes (``train_stats``, ``val_metrics``, ...) so they follow the
        # module across devices; ``train`` itself is taken by ``nn.Module.train``.
        for split in SPLITS:
            setattr(self, f"{split}_stats", self.make_stats())
            setattr(self, f"{split}_metrics", self.make_extra_metrics())
        self.best = MaxMetric() if self.monitor_mode == "max" else MinMetric()
        self.best.persistent(True)
        # Wall-clock marks kept by the module's own hooks: a callback would cost a hook
        # dispatch on every step, the module's hooks are called anyway.
        self.train_started_at: float | None = None
        self.epoch_seconds: list[float] = []
        self._epoch_started_at = 0.0
        self.last_step_loss: float | None = None
        self._listed_within_steps: list[L.Callback] = []
        self._resumed_train_stats: dict[str, Tensor] | None = None
        self._resumed_batches: dict[str, int] | None = None
        self._mid_epoch = False

    # ---- what subclasses choose ----------------------------------------------------------
    def make_stats(self) -> LossAccuracy:
        return LossAccuracy(accuracy=False)

    def make_extra_metrics(self) -> nn.ModuleDict:
        """Metrics beyond loss and accuracy for validation and test (torchmetrics)."""
        return nn.ModuleDict()

    def prepare_target(self, output: Tensor, target: Tensor) -> Tensor:
        return target

    def metric_names(self) -> list[str]:
        """Every validation and test metric the task logs per epoch (``val/acc``, ...)."""
        names = ["loss", *(["acc"] if self.val_stats.accuracy else []), *self.val_metrics]
        logged = [f"{split}/{name}" for split in ("val", "test") for name in names]
        return [*logged, f"{self.monitor}_best"]

    def stats(self, split: str) -> LossAccuracy:
        return getattr(self, f"{split}_stats")

    def metrics(self, split: str) -> nn.ModuleDict:
        return getattr(self, f"{split}_metrics")

    # ---- the loop --------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.automatic_optimization = not self._steps_lean()
            if self.cuda_graph:  # imported only by runs that use it
                from litnets.tasks import graphs

                if need := graphs.graph_need(self.trainer, self):
                    raise ConfigError(f"task.cuda_graph=true needs {need}")
            chunk = execution.plan(self.steps_per_execution, self.trainer, self)
            if isinstance(self.trainer.datamodule, InMemoryDataModule):
                self.trainer.datamodule.steps_per_chunk = chunk

    def _steps_lean(self) -> bool:
        """Whether to take the optimizer step here instead of in Lightning's automatic loop.

        Automatic optimization wraps every step in a closure and a dozen hook dispatches:
        ≈ 0.2 ms a step, 8 % of a 784-300-100-10 MNIST epoch on two CPU cores. The lean
        step is Lightning's public manual-optimization API (``manual_backward``, the wrapped
        optimizer's ``step``), so precision plugins, DDP gradient sync, backward/optimizer
        hooks and the global step all behave as before. Gradient clipping and accumulation
        are what automatic optimization adds on top: runs that set them keep it.
        """
        return execution.automatic_optimization_need(self.trainer, self) is None

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: tuple[Tensor, Tensor] | Chunk, batch_idx: int) -> Tensor:
        if self.automatic_optimization:  # Lightning's closure calls the step hooks itself
            return self._train_step(batch, batch_idx)
        step = self._step_graph.step if self._step_graph is not None else self._train_step
        with execution.step_hooks_only_for(self.trainer, self._listed_within_steps):
            if not isinstance(batch, Chunk):
                return step(batch, batch_idx)
            if self._step_graph is not None and (loss := self._step_graph.chunk(batch)) is not None:
                return loss
            # K batches in one Lightning call (task.steps_per_execution), each an ordinary step.
            max_steps = self.trainer.max_steps
            for offset, one in enumerate(batch):
                loss = step(one, batch.first_index + offset)
                if 0 <= max_steps <= self.global_step:  # max_steps is exact mid-chunk too
                    break
            return loss

    def _train_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, target = batch
        output = self(x)
        loss = self.loss_fn(output, self.prepare_target(output, target))
        self.train_stats.update(loss, output, target)
        self._log_step(loss)
        if not self.automatic_optimization:
            optimizer = self.optimizers()
            # The wrapper forwards each attribute torch's zero_grad reads (≈ 5 µs a step).
            optimizer.optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            self._step_schedulers("step", batch_idx + 1)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate("test", batch)

    def predict_step(self, batch: Any, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, list | tuple) else batch
        return self(x)

    def _evaluate(self, split: str, batch: tuple[Tensor, Tensor]) -> Tensor:
        x, target = batch
        output = self(x)
        loss = self.loss_fn(output, self.prepare_target(output, target))
        self.stats(split).update(loss, output, target)
        for metric in self.metrics(split).values():
            metric.update(*self.metric_inputs(output, target))
        return output

    def metric_inputs(self, output: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        return output, target

    def _log_step(self, loss: Tensor) -> None:
        """Per-step loss at the logging interval: the one place the loop waits for the device.

        The value read is logged, checked for divergence, and kept as ``last_step_loss`` for
        the progress bar, which so needs no device read of its own.
        """
        interval = self.check_finite_every_n_steps
        log_interval = self.trainer.log_every_n_steps
        step = self.global_step
        check_now = interval > 0 and step % interval == 0
        log_now = log_interval > 0 and step % log_interval == 0
        if not (check_now or log_now):
            return
        value = loss.detach().item()
        if not math.isfinite(value):
            self._diverged(value, step)
        self.last_step_loss = value
        if log_now and self.loggers:
            metrics = {"train/loss_step": value, **self._learning_rates()}
            for logger in self.loggers:
                logger.log_metrics(metrics, step=step)

    def _learning_rates(self) -> dict[str, float]:
        """``lr-<Optimizer>`` (``/pg<i>`` per extra group), as Lightning's LearningRateMonitor
        names them; logged here because that callback's per-batch hook rules out chunks."""
        values = {}
        for optimizer in self.trainer.optimizers:
            name = f"lr-{type(optimizer).__name__}"
            groups = optimizer.param_groups
            for i, group in enumerate(groups):
                values[name if len(groups) == 1 else f"{name}/pg{i + 1}"] = float(group["lr"])
        return values

    def _diverged(self, value: float, step: int) -> None:
        lr = self.trainer.optimizers[0].param_groups[0]["lr"] if self.trainer.optimizers else None
        raise DivergenceError(
            f"loss became {value} at epoch {self.current_epoch}, step {step}"
            f"{f' (learning rate {float(lr):g})' if lr is not None else ''}: lower optimizer.lr, "
            "add a scheduler, or check the data for NaN/inf values"
        )

    def _epoch_values(self, split: str) -> dict[str, Tensor]:
        """``split``'s epoch metrics, computed (synced across ranks) and reset."""
        values = {f"{split}/{k}": v for k, v in self.stats(split).compute().items()}
        self.stats(split).reset()
        if split != "train":
            for name, metric in self.metrics(split).items():
                values[f"{split}/{name}"] = metric.compute()
                metric.reset()
        return values

    def _publish(self, values: dict[str, Tensor], split: str) -> None:
        """Epoch metrics to Lightning (checkpoints, progress bar, schedulers read them there)
        and to the loggers, placed at optimizer steps.

        Lightning would place them by the batches its loop has seen, which with chunks
        (``task.steps_per_execution``) counts chunks; logging a ``step`` key instead would
        also put it among the metrics a ``ModelCheckpoint`` names files by (``{step}``).
        The steps are those Lightning gives with one batch per call: fit-time metrics at
        the epoch's last step, counted from 0.
        """
        self.log_dict(values, logger=False, sync_dist=False)
        if self.trainer.sanity_checking or not self.loggers:
            return
        step = self.global_step if split == "test" else self.global_step - 1
        row = {name: float(value) for name, value in values.items()}
        for logger in self.loggers:
            logger.log_metrics({**row, "epoch": float(self.current_epoch)}, step=step)

    def on_train_start(self) -> None:
        self.train_started_at = self._epoch_started_at = time.perf_counter()
        self._listed_within_steps = execution.listed_within_steps(self.trainer)
        execution.quiet_step_hooks(self.trainer, self)
        if self._resumed_batches is not None:
            # Lightning hands the loader its saved state only when it builds the loader after
            # the checkpoint is read; a schedule sized by estimated_stepping_batches builds it
            # before (Lightning 2.x), so the position is handed over here, before iterating.
            self.trainer.train_dataloader.load_state_dict(self._resumed_batches)
        if self._resumed_train_stats is not None:  # resumed mid-epoch: its statistics so far
            for name, value in self._resumed_train_stats.items():
                getattr(self.train_stats, name).copy_(value)
            self._mid_epoch = True
        self._resumed_train_stats = self._resumed_batches = None
        if self.cuda_graph:  # after the checkpoint's optimizer state is loaded
            from litnets.tasks.graphs import StepGraph

            self._step_graph = StepGraph(self)

    def on_train_end(self) -> None:
        self._step_graph = None  # the graph's memory goes with it
        execution.restore_step_hooks(self.trainer)

    def on_train_epoch_start(self) -> None:
        self._epoch_started_at = time.perf_counter()
        self._mid_epoch = True

    def on_train_epoch_end(self) -> None:
        self._mid_epoch = False
        if self._step_graph is not None:  # the replayed steps' statistics
            self._step_graph.flush()
        values = self._epoch_values("train")
        self._publish(values, "train")
        loss = values["train/loss"].item()  # waits for the device: the epoch is really over
        self.epoch_seconds.append(time.perf_counter() - self._epoch_started_at)
        if not math.isfinite(loss):
            self._diverged(loss, self.global_step)
        if not self.automatic_optimization:
            # Validation has run by now, so a plateau scheduler sees this epoch's metric.
            self._step_schedulers("epoch", self.current_epoch + 1)

    def on_validation_epoch_end(self) -> None:
        values = self._epoch_values("val")
        if not self.trainer.sanity_checking:
            self.best.update(values[self.monitor])
            values[f"{self.monitor}_best"] = self.best.compute()
        self._publish(values, "val")

    def on_test_epoch_end(self) -> None:
        self._publish(self._epoch_values("test"), "test")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, idx: int) -> Any:
        """In-memory batches already live on the training device: skip the generic walk."""
        if isinstance(batch, Chunk):
            moved = [self.transfer_batch_to_device(one, device, idx) for one in batch]
            return Chunk(moved, batch.first_index)
        if isinstance(batch, tuple) and all(
            isinstance(t, Tensor) and t.device == device for t in batch
        ):
            return batch
        return super().transfer_batch_to_device(batch, device, idx)

    # ---- exact resume -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep what a resumed run needs to continue exactly: the RNG streams (dropout), where
        the training batches stand and, taken mid-epoch, the epoch's statistics so far."""
        checkpoint["litnets_rng"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["litnets_rng"]["cuda"] = torch.cuda.get_rng_state_all()
        if self._mid_epoch:  # Lightning resumes this epoch: its statistics go on
            if self._step_graph is not None:
                self._step_graph.flush()
            checkpoint["litnets_train_stats"] = {
                name: value.detach().cpu().clone()
                for name, value in self.train_stats.metric_state.items()
            }
        loader = self.trainer.train_dataloader
        if isinstance(loader, Batches | Chunked):  # where the epoch's batches go on
            checkpoint["litnets_batches"] = loader.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._resumed_train_stats = checkpoint.get("litnets_train_stats")
        self._resumed_batches = checkpoint.get("litnets_batches")
        state = checkpoint.get("litnets_rng")
        if state:
            torch.set_rng_state(state["torch"])
            if "cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["cuda"])

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        spec = self.scheduler_spec
        if spec is None:
            return optimizer
        scheduler = spec.factory(optimizer, **self._schedule_length(spec))
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and not spec.monitor:
            raise ConfigError("ReduceLROnPlateau needs scheduler.monitor, e.g. val/loss")
        config = {"scheduler": scheduler, "interval": spec.interval, "frequency": spec.frequency}
        if spec.monitor and self.automatic_optimization:  # the lean step reads it itself
            config |= {"monitor": spec.monitor, "strict": True}
        return {"optimizer": optimizer, "lr_scheduler": config}

    def _step_schedulers(self, interval: str, index: int) -> None:
        """What Lightning does for schedulers under automatic optimization, for the lean step.

        ``index`` counts batches within the epoch (``step``) or epochs (``epoch``) from 1,
        and a scheduler steps when its ``frequency`` divides it, as in Lightning.
        """
        monitor = self.scheduler_spec.monitor if self.scheduler_spec else None
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or index % config.frequency:
                continue
            metric = self._monitored(monitor) if monitor else None
            self.lr_scheduler_step(config.scheduler, metric)

    def _monitored(self, name: str) -> Tensor:
        value = self.trainer.callback_metrics.get(name)
        if value is None:
            logged = ", ".join(sorted(self.trainer.callback_metrics)) or "nothing yet"
            raise ConfigError(
                f"the scheduler follows {name!r}, which was not logged by epoch "
                f"{self.current_epoch} (logged: {logged}); set scheduler.monitor, and "
                "scheduler.frequency to match trainer.check_val_every_n_epoch"
            )
        return value

    def _schedule_length(self, spec: SchedulerSpec) -> dict[str, int]:
        """Fill a scheduler's length from the trainer when the config leaves it out."""
        factory = spec.factory
        given = factory.keywords if isinstance(factory, partial) else {}
        target = factory.func if isinstance(factory, partial) else factory
        params = inspect.signature(target).parameters
        if "total_steps" in params and given.get("total_steps") is None and not given.get("epochs"):
            return {"total_steps": int(execution.optimizer_steps(self.trainer))}
        if "T_max" in params and given.get("T_max") is None:
            steps = execution.optimizer_steps(self.trainer)
            return {"T_max": int(steps if spec.interval == "step" else self.trainer.max_epochs)}
        return {}
