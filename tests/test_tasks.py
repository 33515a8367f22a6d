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
