"""``task.cuda_graph``: the refusals, and the replayed step's bookkeeping.

No GPU here, so the capture itself is exercised only by the CUDA tests at the end (skipped
without one). Everything around it (static buffers, warm-up, the capturable optimizer with
its tensor learning rate written by schedulers, statistics, logging, Lightning's step count,
the eager short batch, resume) runs on the CPU through a stand-in for ``torch.cuda``'s
capture that records the step function and calls it on every replay. That is also what a
CUDA graph does to memory; what it cannot check is CUDA's own restrictions on captured code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import run_script
from litnets import training
from litnets.config import compose
from litnets.errors import ConfigError
from litnets.tasks import graphs
from test_execution import fit, logged, tiny_mnist, weights

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class EagerStandIn:
    """``CudaGraphs`` on the CPU: capturing records the step, replaying calls it."""

    device_type = "cpu"

    def __init__(self) -> None:
        self.replayed: list[int] = []  # replays of each captured graph, in capture order

    @property
    def captures(self) -> int:
        return len(self.replayed)

    @property
    def replays(self) -> int:
        return sum(self.replayed)

    @contextmanager
    def side_stream(self) -> Iterator[None]:
        yield

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        graph = len(self.replayed)
        self.replayed.append(0)

        def replay() -> None:
            self.replayed[graph] += 1
            step()

        return replay


@pytest.fixture
def stand_in(monkeypatch) -> EagerStandIn:
    backend = EagerStandIn()
    monkeypatch.setattr(graphs, "BACKEND", backend)
    return backend


def graphed(data_dir: Path, *extra: str) -> list[str]:
    """Tiny MNIST (11 batches an epoch, the last short) with a step schedule and dropout."""
    return tiny_mnist(
        data_dir, "scheduler=step", "scheduler.step_size=2", "model.dropout=0.2", *extra
    )


# ---- refusals ----------------------------------------------------------------------------------


def test_without_cuda_it_is_one_line(tmp_path, tiny_data_dir) -> None:
    result = run_script(
        "train.py", *tiny_mnist(tiny_data_dir, "task.cuda_graph=true"), log_dir=tmp_path
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "litnets: error: task.cuda_graph=true needs a CUDA GPU (trainer=gpu); this run trains on cpu"
    )


class GradientNorm(L.Callback):
    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None: ...


@pytest.mark.parametrize(
    ("extra", "callbacks", "message"),
    [
        (["optimizer=adagrad"], [], "SGD, Adam or AdamW (their capturable forms); this run uses Adagrad"),
        (["scheduler=onecycle"], [], "OneCycleLR also cycles momentum (set scheduler.cycle_momentum=false)"),
        (["+trainer.gradient_clip_val=1.0"], [], "the lean optimizer step, which gradient clipping"),
        (["trainer.precision=bf16-mixed"], [], "32-bit precision (trainer.precision=bf16-mixed)"),
        ([], [GradientNorm()], "no backward or optimizer-step hooks, which GradientNorm override"),
        (["compile=true"], [], "compile=true and task.cuda_graph=true are alternatives"),
    ],
)  # fmt: skip
def test_what_a_graph_cannot_hold_is_refused(
    tmp_path, tiny_data_dir, stand_in, extra, callbacks, message
) -> None:
    cfg = compose(
        tiny_mnist(tiny_data_dir, "task.cuda_graph=true", *extra), output_dir=str(tmp_path)
    )
    with pytest.raises(ConfigError) as err:
        training.train(cfg, extra_callbacks=callbacks)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_step_that_cannot_be_captured_is_one_line(
    tmp_path, tiny_data_dir, stand_in, monkeypatch
) -> None:
    def refuse(step: Callable[[], None]) -> Callable[[], None]:
        raise RuntimeError("operation not permitted when stream is capturing\nCUDA details")

    monkeypatch.setattr(stand_in, "capture", refuse)
    cfg = compose(tiny_mnist(tiny_data_dir, "task.cuda_graph=true"), output_dir=str(tmp_path))
    with pytest.raises(ConfigError) as err:
        training.train(cfg)
    assert str(err.value) == (
        "task.cuda_graph=true: this model's training step cannot be captured in a CUDA graph "
        "(operation not permitted when stream is capturing); set task.cuda_graph=false"
    )


def test_the_optimizer_is_made_capturable_in_place() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    sgd = torch.optim.SGD([weight], lr=0.1, momentum=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=1, gamma=0.5)
    graphs.make_capturable(sgd, torch.device("cpu"))
    lr = sgd.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and sgd.param_groups[0]["fused"]
    weight.grad = torch.ones(3)
    sgd.step()
    scheduler.step()
    assert sgd.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.05)  # in place
    adam = torch.optim.Adam([weight], lr=0.1)
    adam.step()
    graphs.make_capturable(adam, torch.device("cpu"))
    assert isinstance(adam.param_groups[0]["lr"], torch.Tensor)
    assert adam.param_groups[0]["capturable"] is False  # only CUDA keeps steps on the device


# ---- the replayed step, on the CPU -------------------------------------------------------------


@pytest.mark.parametrize("steps", ["1", "4"])
def test_replayed_steps_train_like_eager_steps(tmp_path, tiny_data_dir, stand_in, steps) -> None:
    """Same steps, schedule, logged rows and (to float rounding: the fused SGD kernel)
    weights as the eager run; the short last batch of each epoch is the eager step's."""
    common = graphed(tiny_data_dir, f"task.steps_per_execution={steps}")
    eager, _ = fit(tmp_path, "eager", common)
    replayed, seen = fit(tmp_path, "graph", [*common, "task.cuda_graph=true"])
    epochs, batches = 4, 11
    if steps == "1":  # 3 warm-up steps, then every full batch is replayed; 4 short ones eager
        assert stand_in.replayed == [epochs * (batches - 1) - graphs.WARMUP_STEPS]
    else:  # chunks of 4 full batches through the chunk graph (the 2nd on), the rest step by step
        chunk_replays = 1 + (epochs - 1) * 2
        assert stand_in.replayed == [1 + epochs * 2, chunk_replays]
    assert seen.global_step == replayed["global_steps"] == eager["global_steps"] == 44
    wa, wb = weights(tmp_path / "eager"), weights(tmp_path / "graph")
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-4, atol=1e-5, msg=name)
    rows_a, rows_b = logged(tmp_path / "eager"), logged(tmp_path / "graph")
    assert [sorted(r) for r in rows_a] == [sorted(r) for r in rows_b]
    steps_a = [(r["step"], float(r["lr-SGD"])) for r in rows_a if "lr-SGD" in r]
    steps_b = [(r["step"], float(r["lr-SGD"])) for r in rows_b if "lr-SGD" in r]
    assert [s for s, _ in steps_a] == [s for s, _ in steps_b]
    assert [lr for _, lr in steps_b] == pytest.approx([lr for _, lr in steps_a], rel=1e-6)
    assert len({lr for _, lr in steps_b}) == 2  # the step schedule acted on the tensor lr
    losses_a = [float(r["train/loss_step"]) for r in rows_a if "train/loss_step" in r]
    losses_b = [float(r["train/loss_step"]) for r in rows_b if "train/loss_step" in r]
    assert losses_b == pytest.approx(losses_a, rel=1e-4)
    # the epoch statistics, summed inside the graph and merged at each epoch's end
    epochs_a = [(float(r["train/loss"]), float(r["train/acc"])) for r in rows_a if "train/acc" in r]
    epochs_b = [(float(r["train/loss"]), float(r["train/acc"])) for r in rows_b if "train/acc" in r]
    assert len(epochs_b) == epochs and [acc for _, acc in epochs_b] == [acc for _, acc in epochs_a]
    assert [loss for loss, _ in epochs_b] == pytest.approx([loss for loss, _ in epochs_a], rel=1e-4)
    assert replayed["test"]["test/acc"] == pytest.approx(eager["test"]["test/acc"], abs=0.03)


def test_max_steps_stops_at_a_replayed_step(tmp_path, tiny_data_dir, stand_in) -> None:
    summary, seen = fit(
        tmp_path, "r", graphed(tiny_data_dir, "task.cuda_graph=true", "trainer.max_steps=17")
    )
    assert seen.global_step == summary["global_steps"] == 17
    assert stand_in.replays == 17 - graphs.WARMUP_STEPS - 1  # epoch 0's short batch: eager


def test_a_chunk_that_would_pass_max_steps_goes_step_by_step(
    tmp_path, tiny_data_dir, stand_in
) -> None:
    """Steps 16-19 would be one chunk graph replay; max_steps=18 stops inside it."""
    extra = ["task.cuda_graph=true", "task.steps_per_execution=4", "trainer.max_steps=18"]
    summary, seen = fit(tmp_path, "r", graphed(tiny_data_dir, *extra))
    assert seen.global_step == summary["global_steps"] == 18
    # step graph: epoch 0's 4th, 9th and 10th steps, then steps 16-18; chunk graph: 5-8, 12-15
    assert stand_in.replayed == [6, 2]


def test_a_schedule_stepped_per_batch_keeps_one_graph_per_step(
    tmp_path, tiny_data_dir, stand_in
) -> None:
    """A chunk graph would hold one learning rate for its K steps: no chunk graph then."""
    extra = ["task.cuda_graph=true", "task.steps_per_execution=4", "scheduler.interval=step"]
    summary, _ = fit(tmp_path, "r", graphed(tiny_data_dir, *extra))
    assert summary["global_steps"] == 44
    assert stand_in.replayed == [44 - graphs.WARMUP_STEPS - 4]


def test_a_graphed_run_resumes_exactly(tmp_path, tiny_data_dir, stand_in) -> None:
    """Stopped after epoch 2 and resumed (warm-up and capture again), it ends as the run
    that went straight through: the optimizer is converted again after its state loads."""
    common = graphed(tiny_data_dir, "task.cuda_graph=true", "task.steps_per_execution=4")
    straight, _ = fit(tmp_path, "straight", common)
    fit(tmp_path, "parts", [*common, "trainer.max_epochs=2"])
    resume = compose([f"resume={tmp_path / 'parts'}"], output_dir=str(tmp_path / "unused"))
    resumed = training.train(resume, overrides=["trainer.max_epochs=4"])
    assert stand_in.captures == 6  # step and chunk graphs: straight, first part, resumed part
    wa, wb = weights(tmp_path / "straight"), weights(tmp_path / "parts")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert (resumed["global_steps"], resumed["epochs"]) == (straight["global_steps"], 4)
    assert resumed["test"] == straight["test"]


class SaveMidEpoch(L.Callback):
    """Saves a checkpoint after batch 5 of epoch 1, as a pre-empted run would."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (1, 5):
            trainer.save_checkpoint(self.path)


def test_a_mid_epoch_checkpoint_holds_the_replayed_steps_statistics(
    tmp_path, tiny_data_dir, stand_in
) -> None:
    """The graph's statistics are merged into the task's before a checkpoint takes them."""
    saved = {}
    for name, extra in {"eager": [], "graph": ["task.cuda_graph=true"]}.items():
        saved[name] = tmp_path / f"{name}.ckpt"
        overrides = graphed(tiny_data_dir, *extra, "trainer.max_epochs=2", "test_after_fit=false")
        cfg = compose(overrides, output_dir=str(tmp_path / name))
        training.train(cfg, extra_callbacks=[SaveMidEpoch(saved[name])])
    assert stand_in.replays > 0
    stats = {
        name: torch.load(path, weights_only=False)["litnets_train_stats"]
        for name, path in saved.items()
    }
    assert stats["graph"]["count"].item() == stats["eager"]["count"].item() == 6 * 8
    assert stats["graph"]["correct"].item() == stats["eager"]["correct"].item()
    torch.testing.assert_close(
        stats["graph"]["loss_sum"], stats["eager"]["loss_sum"], rtol=1e-4, atol=0
    )


def test_the_learning_rate_range_test_steps_eagerly(tmp_path, stand_in) -> None:
    """Lightning's finder sets the rate step by step: its short probe is not captured."""
    cfg = compose(["tune=lr_find", "tune.num_training=20", "task.cuda_graph=true",
                   "pictures=false", "logger=none"], output_dir=str(tmp_path))  # fmt: skip
    found = training.train(cfg)["lr_find"]
    assert stand_in.captures == 0 and len(found["lrs"]) == 20


# ---- on a GPU ----------------------------------------------------------------------------------


class CudaRandomState(L.Callback):
    """The CUDA generator's state when training ends: dropout's draws so far."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.state = torch.cuda.get_rng_state()


@CUDA
@pytest.mark.parametrize("steps", ["1", "4"])  # 4: chunks of 4 steps in one graph as well
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_cuda_graph_trains_like_the_eager_step(tmp_path, tiny_data_dir, optimizer, steps) -> None:
    """The real capture: same steps, the CUDA generator advanced as by eager steps, close
    weights and BatchNorm statistics, close accuracy."""
    common = graphed(
        tiny_data_dir, "trainer=gpu", f"optimizer={optimizer}", f"task.steps_per_execution={steps}"
    )
    states = {"eager": CudaRandomState(), "graph": CudaRandomState()}
    eager = training.train(
        compose(common, output_dir=str(tmp_path / "eager")), extra_callbacks=[states["eager"]]
    )
    replayed = training.train(
        compose([*common, "task.cuda_graph=true"], output_dir=str(tmp_path / "graph")),
        extra_callbacks=[states["graph"]],
    )
    assert replayed["global_steps"] == eager["global_steps"]
    assert torch.equal(states["graph"].state, states["eager"].state)
    wa, wb = weights(tmp_path / "eager"), weights(tmp_path / "graph")
    for name in wa:  # capturable/fused optimizer kernels round differently from eager ones
        torch.testing.assert_close(wb[name].float(), wa[name].float(), rtol=1e-2, atol=1e-3)
    assert replayed["test"]["test/acc"] == pytest.approx(eager["test"]["test/acc"], abs=0.05)
