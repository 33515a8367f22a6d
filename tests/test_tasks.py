"""Tasks: losses, device-side epoch statistics, scheduler length filling."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torch.nn.functional as F

from litnets.data.batches import Chunked, EpochIndexSampler, TensorBatches
from litnets.errors import ConfigError
from litnets.models.mlp import MLP
from litnets.tasks import ClassificationTask, RegressionTask, SchedulerSpec
from litnets.tasks.metrics import LossAccuracy


def test_loss_accuracy_matches_a_direct_computation() -> None:
    torch.manual_seed(0)
    stats = LossAccuracy()
    outputs, targets, losses = [], [], []
    for n in (7, 5, 9):
        out, target = torch.randn(n, 4), torch.randint(0, 4, (n,))
        loss = F.cross_entropy(out, target)
        stats.update(loss, out, target)
        outputs.append(out), targets.append(target), losses.append(loss * n)
    result = stats.compute()
    out, target = torch.cat(outputs), torch.cat(targets)
    assert result["acc"].item() == pytest.approx((out.argmax(1) == target).float().mean().item())
    assert result["loss"].item() == pytest.approx(F.cross_entropy(out, target).item(), rel=1e-5)


def test_sums_kept_elsewhere_merge_as_an_update(recwarn) -> None:
    """A CUDA graph adds batches into tensors of its own (``accumulate``) and merges them in
    (``merge_state``): the epoch's result is the one ``update`` gives, with no warning that
    ``compute`` came before any update, and no value cached from before the merge."""
    torch.manual_seed(0)
    batches = [(torch.randn(n, 4), torch.randint(0, 4, (n,))) for n in (7, 5, 9)]
    direct, merged = LossAccuracy(), LossAccuracy()
    sums = {name: torch.zeros_like(value) for name, value in merged.metric_state.items()}
    for out, target in batches:
        direct.update(F.cross_entropy(out, target), out, target)
        merged.accumulate(sums, F.cross_entropy(out, target), out, target)
    assert merged.count.item() == 0  # nothing reached the metric itself yet
    merged.merge_state(sums)
    expected = direct.compute()
    assert {k: v.item() for k, v in merged.compute().items()} == pytest.approx(
        {k: v.item() for k, v in expected.items()}
    )
    sums["count"].zero_()  # the graph's tensors are not the metric's
    merged.merge_state({name: torch.ones_like(value) for name, value in sums.items()})
    assert merged.compute()["acc"].item() != pytest.approx(expected["acc"].item())  # not cached
    assert not [w for w in recwarn if "before the ``update``" in str(w.message)]


@pytest.mark.parametrize("loss", ["mse", "l1", "huber", "smooth_l1"])
def test_every_regression_loss(loss) -> None:
    task = RegressionTask(
        MLP((1,), 1, hidden_sizes=[4]), partial(torch.optim.SGD, lr=0.1), loss=loss
    )
    out, target = torch.randn(6, 1), torch.randn(6)
    value = task.loss_fn(out, task.prepare_target(out, target))
    assert value.ndim == 0 and value.item() > 0


def test_unknown_loss_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cross_entropy"):
        ClassificationTask(
            MLP((4,), 3), partial(torch.optim.SGD, lr=0.1), loss="hinge", num_classes=3
        )


def test_monitors() -> None:
    assert (ClassificationTask.monitor, ClassificationTask.monitor_mode) == ("val/acc", "max")
    assert (RegressionTask.monitor, RegressionTask.monitor_mode) == ("val/loss", "min")


def test_scheduler_length_is_filled_from_the_trainer() -> None:
    class FakeTrainer:
        estimated_stepping_batches = 120
        max_epochs = 6
        max_steps = -1
        train_dataloader = None

    task = RegressionTask(MLP((1,), 1), partial(torch.optim.SGD, lr=0.1))
    task._trainer = FakeTrainer()
    onecycle = SchedulerSpec(
        partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=None), "step"
    )
    assert task._schedule_length(onecycle) == {"total_steps": 120}
    cosine = SchedulerSpec(partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=None), "epoch")
    assert task._schedule_length(cosine) == {"T_max": 6}
    step = SchedulerSpec(partial(torch.optim.lr_scheduler.StepLR, step_size=5))
    assert task._schedule_length(step) == {}

    # Batches in chunks of 8 (task.steps_per_execution): Lightning counts 3 chunks an epoch,
    # the schedule must still last 20 batches x 6 epochs.
    sampler = EpochIndexSampler(20, shuffle=True)
    FakeTrainer.train_dataloader = Chunked(TensorBatches([torch.zeros(20)], 1, sampler), 8)
    FakeTrainer.estimated_stepping_batches = 18
    assert task._schedule_length(onecycle) == {"total_steps": 120}
    FakeTrainer.max_steps = 50
    assert task._schedule_length(onecycle) == {"total_steps": 50}


def _registered(module: torch.nn.Module) -> set[str]:
    return {*module._parameters, *module._buffers, *module._modules}


def test_plain_attributes_are_written_as_nn_module_would_write_them() -> None:
    """``PlainAttributes`` skips ``nn.Module.__setattr__``'s checks for a few names written
    every step. That is only sound for names never registered as a parameter, buffer or
    submodule: then ``nn.Module`` writes ``__dict__`` too. Pin both, on a trained task and
    metric (where torchmetrics and Lightning have written them), and that the names are still
    the ones those libraries write."""
    from litnets.tasks.attributes import PlainAttributes

    task = ClassificationTask(MLP((4,), 3), partial(torch.optim.SGD, lr=0.1), num_classes=3)
    stats = task.train_stats
    stats.update(torch.tensor(1.0), torch.randn(2, 3), torch.tensor([0, 1]))
    stats.compute()
    for module, names in ((task, {"_current_fx_name"}), (stats, {"_computed", "_update_count"})):
        assert isinstance(module, PlainAttributes)
        assert module.plain_attributes == names
        assert all(name in vars(module) for name in names)  # the libraries' own names
        assert not names & _registered(module)
        for value in ("training_step", None, 3, torch.zeros(2), {"acc": torch.ones(())}):
            for name in names:
                setattr(module, name, value)
                assert vars(module)[name] is value
        assert not names & _registered(module)
    task.scale = torch.nn.Parameter(torch.ones(1))  # any other name: nn.Module's path
    assert "scale" in task._parameters and "scale" not in vars(task)


def test_a_step_writes_no_plain_attribute_through_nn_module(monkeypatch) -> None:
    """The names listed are the ones written per step: a lean step (hooks dispatched as in
    Lightning, metric updated) sends no write of them through ``nn.Module.__setattr__``.
    The probe has a step hook, so the fit keeps Lightning's precision plugin and its hook
    dispatch (``litnets.precision.QuietStepHooks`` would skip it)."""
    import lightning as L

    writes: list[str] = []
    original = torch.nn.Module.__setattr__

    def counting(self, name, value):
        writes.append(name)
        original(self, name, value)

    task = ClassificationTask(MLP((4,), 3), partial(torch.optim.SGD, lr=0.1), num_classes=3)
    trainer = L.Trainer(max_steps=3, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(6, 4), torch.tensor([0, 2, 1] * 2)), batch_size=2
    )

    class Probe(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            monkeypatch.setattr(torch.nn.Module, "__setattr__", counting)

        def on_train_batch_end(self, *args) -> None:
            monkeypatch.setattr(torch.nn.Module, "__setattr__", original)

        def on_after_backward(self, *args) -> None:  # the step hooks stay dispatched
            pass

    trainer.callbacks.append(Probe())
    trainer.fit(task, train_dataloaders=data)
    assert trainer.global_step == 3
    assert type(trainer.strategy.precision_plugin).__name__ == "Precision"  # Lightning's
    assert not {"_current_fx_name", "_computed", "_update_count"} & set(writes)
