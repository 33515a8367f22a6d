"""The lean optimizer step: the same training as Lightning's automatic optimization, exactly.

In process (``training.train`` on a composed config), on Iris, so each run takes a second.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from litnets import training
from litnets.config import compose
from litnets.errors import ConfigError

COMMON = ["pictures=false", "logger=none", "trainer.enable_model_summary=false", "seed=3"]
COMMON += ["trainer.check_val_every_n_epoch=2", "optimizer.lr=0.05"]
SCHEDULERS = {
    "step": ["scheduler=step", "scheduler.step_size=3"],
    # A threshold no epoch meets, so the plateau scheduler really lowers the rate.
    "plateau": ["scheduler=plateau", "scheduler.patience=0", "+scheduler.threshold=0.9"],
    "onecycle": ["scheduler=onecycle", "data.batch_size=16"],
}


class _Probe(L.Callback):
    """Records which optimization path ran and the learning rate it ended with."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.automatic = pl_module.automatic_optimization
        self.final_lr = trainer.optimizers[0].param_groups[0]["lr"]


def train(tmp_path: Path, name: str, *overrides: str) -> tuple[dict, _Probe, dict]:
    cfg = compose([*COMMON, *overrides], output_dir=str(tmp_path / name))
    probe = _Probe()
    summary = training.train(cfg, extra_callbacks=[probe])
    return summary, probe, last_checkpoint(tmp_path / name)


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)


def same_weights(a: dict, b: dict) -> bool:
    return a["state_dict"].keys() == b["state_dict"].keys() and all(
        torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"]
    )


def expected_final_lr(scheduler: str, summary: dict) -> float:
    """The learning rate the schedule itself reaches, stepped standalone as often as the run
    stepped it: each step (onecycle), each epoch (step), each validation (plateau, which
    here never sees an improvement once its first value is set)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    steps, epochs = summary["global_steps"], summary["epochs"]
    if scheduler == "onecycle":
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, total_steps=steps)
        ticks = [None] * steps
    elif scheduler == "step":
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3)
        ticks = [None] * epochs
    else:
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.1, patience=0, threshold=0.9
        )
        ticks = [1.0] * (epochs // 2)  # check_val_every_n_epoch=2
    for metric in ticks:
        optimizer.step()
        schedule.step(*([] if metric is None else [metric]))
    return optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_lean_step_trains_exactly_like_automatic_optimization(tmp_path, scheduler) -> None:
    overrides = [*SCHEDULERS[scheduler], "trainer.max_epochs=12"]
    lean, lean_probe, lean_ckpt = train(tmp_path, "lean", *overrides)
    auto, auto_probe, auto_ckpt = train(tmp_path, "auto", *overrides, "task.lean_step=false")
    assert (lean_probe.automatic, auto_probe.automatic) == (False, True)
    # the schedule really ran, stepped as often as its own definition says ...
    assert lean_probe.final_lr == pytest.approx(expected_final_lr(scheduler, lean), rel=1e-12)
    assert lean_probe.final_lr == auto_probe.final_lr  # ... and at the same times
    assert lean["global_steps"] == auto["global_steps"] >= 12
    assert lean["test"] == auto["test"]
    assert same_weights(lean_ckpt, auto_ckpt)


def test_gradient_clipping_keeps_automatic_optimization(tmp_path) -> None:
    _, probe, _ = train(tmp_path, "clip", "trainer.max_epochs=2", "+trainer.gradient_clip_val=1.0")
    assert probe.automatic


@pytest.mark.parametrize("scheduler", ["step", "plateau"])
def test_resume_with_a_scheduler_continues_exactly(tmp_path, scheduler) -> None:
    """13 epochs, then resumed to 30 (off the validation cadence), equals 30 straight."""
    overrides = SCHEDULERS[scheduler]
    straight, _, straight_ckpt = train(tmp_path, "straight", *overrides, "trainer.max_epochs=30")
    train(tmp_path, "split", *overrides, "trainer.max_epochs=13")
    resume = compose([f"resume={tmp_path / 'split'}"], output_dir=str(tmp_path / "unused"))
    resumed = training.train(resume, overrides=["trainer.max_epochs=30"])
    resumed_ckpt = last_checkpoint(tmp_path / "split")
    assert resumed["epochs"] == straight["epochs"] == 30
    assert resumed["test"] == straight["test"]
    assert resumed_ckpt["lr_schedulers"] == straight_ckpt["lr_schedulers"]
    assert same_weights(resumed_ckpt, straight_ckpt)


def test_a_run_shorter_than_the_checkpoint_cadence_still_leaves_last_ckpt(tmp_path) -> None:
    summary, _, checkpoint = train(tmp_path, "short", "trainer.max_epochs=3")
    assert Path(summary["checkpoints"]["last"]).name == "last.ckpt"
    assert checkpoint["global_step"] == 3


def test_plateau_without_a_monitor_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"needs scheduler\.monitor"):
        train(tmp_path, "bad", "scheduler=plateau", "scheduler.monitor=null")


@pytest.mark.parametrize("option", ["trainer.precision=bf16-mixed", "compile=true"])
def test_mixed_precision_and_compile_train_with_the_lean_step(tmp_path, option) -> None:
    """On CPU here; on a GPU the same paths (autocast, torch.compile) run under CUDA."""
    summary, probe, _ = train(tmp_path, "run", option, "trainer.max_epochs=100")
    assert not probe.automatic
    assert summary["status"] == "completed"
    assert summary["test"]["test/acc"] >= 0.9
