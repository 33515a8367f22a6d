"""``task.cuda_graph``: full-size training steps replayed from CUDA graphs.

On a GPU the tutorials' models do tens of microseconds of work a step, while launching the
step's few dozen kernels from Python costs hundreds. A CUDA graph records the step
(forward, loss, backward, optimizer step) once and replays it with a single launch. A graph
replays fixed memory, which decides the design:

* each batch is copied into static input buffers; gathering it from the GPU-resident split
  and augmenting it stay eager, before the copy, so batches are exactly the eager ones;
* the optimizer runs in its capturable form (Adam/AdamW ``capturable=True``, SGD
  ``fused=True``) with its learning rate as a device tensor, which schedulers write in
  place, so step-interval schedules act inside the graph;
* the first ``WARMUP_STEPS`` steps run eagerly on a side stream (optimizer state,
  autograd's and cuBLAS' lazy set-up), as PyTorch's capture recipe asks;
* the epoch statistics (loss and accuracy sums) are added up inside the graph, in
  tensors of its own that are merged into the task's at the epoch's end and before a
  checkpoint: on the host they were 8 of a replayed step's 10 remaining tensor operations,
  each a kernel launch;
* the loss is copied out of the graph into a static buffer; step logging, the NaN guard,
  the step count and schedulers then run eagerly, in the eager step's order;
* a batch of another size (an epoch's short last batch) takes the eager step;
* a chunk of K full batches (``task.steps_per_execution``) is replayed from a second graph
  that holds all K steps, one launch for K steps, when nothing has to run between them: no
  schedule stepped per batch, and ``max_steps`` not inside the chunk. Its steps are then
  logged and counted in order. Other chunks (the epoch's last, shorter one) go step by step.

BatchNorm's running statistics are updated inside the graph, in place, and dropout draws
from the CUDA generator, whose graph-safe offsets replays advance as eager steps do.

One GPU, 32-bit, lean steps: DDP's gradient all-reduce, the precision plugins and the
callbacks' backward/optimizer hooks act on eager steps only, so runs that use them are
refused in one line. The capture itself needs CUDA; ``BACKEND`` is the one place that
touches ``torch.cuda``, which lets the tests drive everything else on a CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar, cast

import lightning as L
import torch
from torch import Tensor

from litnets.errors import ConfigError
from litnets.tasks import execution

if TYPE_CHECKING:
    from litnets.data.batches import Chunk
    from litnets.tasks.base import Task

WARMUP_STEPS = 3
CAPTURABLE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


class CudaGraphs:
    """Capture and replay with ``torch.cuda``: the CUDA half of ``StepGraph``."""

    device_type = "cuda"

    @contextmanager
    def side_stream(self) -> Iterator[None]:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            yield
        torch.cuda.current_stream().wait_stream(stream)

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        """Record ``step``'s kernels (nothing runs); the returned call replays them."""
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        return graph.replay


BACKEND = CudaGraphs()


def graph_need(trainer: L.Trainer, task: Task) -> str | None:
    """What in this run rules out a captured step, if anything (checked when fitting starts)."""
    device = trainer.strategy.root_device.type
    if device != BACKEND.device_type:
        return f"a CUDA GPU (trainer=gpu); this run trains on {device}"
    if trainer.world_size > 1:
        return "one device: DDP's gradient all-reduce is not captured (use trainer.devices=1)"
    if need := execution.automatic_optimization_need(trainer, task):
        return f"the lean optimizer step, which {need} rules out"
    if str(trainer.precision) != "32-true":
        return f"32-bit precision (trainer.precision={trainer.precision})"
    hooked = [type(callback).__name__ for callback in execution.step_hook_callbacks(trainer)] + [
        type(task).__name__
    ] * execution.task_has_step_hooks(task)
    if hooked:
        return f"no backward or optimizer-step hooks, which {', '.join(hooked)} override"
    return None


def optimizer_need(optimizer: torch.optim.Optimizer, schedulers: list) -> str | None:
    """Whether the optimizer and schedulers can act inside a graph."""
    if type(optimizer) not in CAPTURABLE:
        return (
            f"SGD, Adam or AdamW (their capturable forms); this run uses {type(optimizer).__name__}"
        )
    for config in schedulers:
        if getattr(config.scheduler, "cycle_momentum", False):
            return (
                f"schedules that change only the learning rate: {type(config.scheduler).__name__} "
                "also cycles momentum (set scheduler.cycle_momentum=false)"
            )
    return None


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Switch ``optimizer`` to its capturable form, the learning rate a tensor on ``device``.

    Done after a checkpoint's optimizer state is loaded, so a resumed run is converted too.
    """
    for group in optimizer.param_groups:
        lr = group["lr"]
        group["lr"] = (lr if isinstance(lr, Tensor) else torch.tensor(float(lr))).to(device)
        if isinstance(optimizer, torch.optim.SGD):
            group["fused"], group["foreach"] = True, False
        else:  # Adam, AdamW: capturable keeps the step count on the device
            group["capturable"] = device.type == "cuda"
    for state in optimizer.state.values():
        if isinstance(state.get("step"), Tensor):
            state["step"] = state["step"].to(device)


def count_optimizer_step(trainer: L.Trainer) -> None:
    """Tell Lightning a replayed step happened, as its wrapped optimizer ``step`` would.

    Lightning internals (2.x): the manual-optimization loop's step progress, which is what
    ``global_step`` counts; ``tests/test_graphs.py`` pins it.
    """
    progress = trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
    progress.increment_ready()
    progress.increment_completed()


class CaptureError(RuntimeError):
    """CUDA refused to capture a step (it read a value back to the host, ...)."""


T = TypeVar("T")


class GraphedStep:
    """``step(inputs, targets)`` as PyTorch's capture recipe runs it, for any training loop.

    The first ``warmup`` batches take the caller's eager step on a side stream; the
    next batch is captured (``step`` on static input buffers of its shape) and it and every
    later batch of that shape are copied into the buffers and replayed; a batch of another
    shape (an epoch's short last one) takes the eager step.
    """

    def __init__(self, step: Callable[[Tensor, Tensor], None], warmup: int = WARMUP_STEPS) -> None:
        self.step = step
        self.warmup = warmup
        self.warmed_up = 0
        self.replay: Callable[[], None] | None = None
        self.inputs = self.targets = torch.empty(0)

    def __call__(self, x: Tensor, y: Tensor, eager: Callable[[], T]) -> T | None:
        """``eager()``'s result, or ``None`` when the batch was replayed."""
        if self.replay is None and self.warmed_up < self.warmup:
            self.warmed_up += 1
            with BACKEND.side_stream():
                return eager()
        if self.replay is None:
            self.inputs, self.targets = torch.empty_like(x), torch.empty_like(y)
            try:
                self.replay = BACKEND.capture(lambda: self.step(self.inputs, self.targets))
            except RuntimeError as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise CaptureError(first or type(err).__name__) from err
        if x.shape != self.inputs.shape or y.shape != self.targets.shape:
            return eager()
        self.inputs.copy_(x)
        self.targets.copy_(y)
        self.replay()
        return None


class StepGraph:
    """The training step of ``task`` through a ``GraphedStep``, with the eager step's
    bookkeeping after each replay; a whole chunk of full batches (``steps_per_execution``)
    through one graph of its K steps, when nothing has to happen between them."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.optimizer: torch.optim.Optimizer = task.optimizers().optimizer
        if need := optimizer_need(self.optimizer, task.trainer.lr_scheduler_configs):
            raise ConfigError(f"task.cuda_graph=true needs {need}")
        make_capturable(self.optimizer, task.device)
        self.graphed = GraphedStep(self._recorded_step)
        self.loss: Tensor | None = None
        stats = task.train_stats.metric_state
        self.sums = {name: torch.zeros_like(value) for name, value in stats.items()}
        # A chunk graph holds no scheduler step: schedules stepped per batch rule it out.
        # The step graph's warm-up does what a warm-up must, so it is captured at once.
        per_batch = any(c.interval == "step" for c in task.trainer.lr_scheduler_configs)
        self.chunk_graph = None if per_batch else GraphedStep(self._recorded_chunk, warmup=0)
        self.chunk_size = 0
        self.losses: Tensor | None = None

    def step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, target = batch
        loss = self._graphed(self.graphed, x, target, lambda: self._eager_step(batch, batch_idx))
        if loss is not None:  # an eager step: warm-up, or the short last batch
            return loss
        task = self.task
        task._log_step(self.loss)
        count_optimizer_step(task.trainer)
        task._step_schedulers("step", batch_idx + 1)
        return self.loss

    def chunk(self, batches: Chunk) -> Tensor | None:
        """All of ``batches`` through the chunk graph: the last step's loss, or ``None``
        when they must take ``step`` one by one (warming up, a short batch or chunk, a
        schedule stepped per batch, ``max_steps`` inside the chunk)."""
        graphed, task = self.chunk_graph, self.task
        if graphed is None or self.graphed.replay is None:  # none, or still warming up
            return None
        full = all(x.shape == self.graphed.inputs.shape for x, _ in batches)
        if not full or len(batches) != (self.chunk_size or len(batches)):
            return None
        max_steps = task.trainer.max_steps
        if 0 <= max_steps < task.global_step + len(batches):
            return None
        self.chunk_size = len(batches)
        inputs = torch.cat([x for x, _ in batches])
        targets = torch.cat([y for _, y in batches])
        if self._graphed(graphed, inputs, targets, lambda: "not replayed") is not None:
            return None
        losses = cast(Tensor, self.losses).unbind()
        for loss in losses:
            task._log_step(loss)
            count_optimizer_step(task.trainer)
        return losses[-1]

    def _graphed(
        self, graphed: GraphedStep, x: Tensor, y: Tensor, eager: Callable[[], T]
    ) -> T | None:
        try:
            return graphed(x, y, eager)
        except CaptureError as err:  # e.g. a model that reads a value back to the host
            raise ConfigError(
                f"task.cuda_graph=true: this model's training step cannot be captured in a "
                f"CUDA graph ({err}); set task.cuda_graph=false"
            ) from err

    def _eager_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        with warnings.catch_warnings():  # "capturable=True ... without graph capture": meant
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            return self.task._train_step(batch, batch_idx)

    def flush(self) -> None:
        """Merge the replayed steps' statistics into the task's (epoch end, checkpoints)."""
        self.task.train_stats.merge_state(self.sums)  # makes new tensors: zeroing is safe
        for value in self.sums.values():
            value.zero_()

    def _recorded_step(self, inputs: Tensor, targets: Tensor) -> None:
        """The step graph: one step, its loss copied out to a buffer made while capturing
        (in the graph's own memory, which stays with the graph)."""
        loss = self._graph_step(inputs, targets)
        if self.loss is None:
            self.loss = torch.empty_like(loss)
        self.loss.copy_(loss)

    def _recorded_chunk(self, inputs: Tensor, targets: Tensor) -> None:
        """The chunk graph: ``chunk_size`` steps on consecutive slices, losses copied out."""
        size = len(inputs) // self.chunk_size
        losses = torch.stack([
            self._graph_step(inputs[i : i + size], targets[i : i + size])
            for i in range(0, len(inputs), size)
        ])  # fmt: skip
        if self.losses is None:
            self.losses = torch.empty_like(losses)
        self.losses.copy_(losses)

    def _graph_step(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """What a graph holds per step: forward, loss, backward, optimizer step, statistics."""
        task = self.task
        self.optimizer.zero_grad(set_to_none=True)  # backward then writes fresh gradients
        output = task(inputs)
        loss = task.loss_fn(output, task.prepare_target(output, targets))
        loss.backward()
        self.optimizer.step()
        task.train_stats.accumulate(self.sums, loss, output, targets)
        return loss.detach()
