"""Pre-emption mid-epoch: SIGUSR1 at a random step, ``last.ckpt`` saved between two steps,
``resume=`` bit for bit equal to the uninterrupted run (weights, every logged row, the record).

The batch iterators are resumable (Lightning's ``state_dict``/``load_state_dict``): a
resumed epoch skips the batches already trained on and replays their augmentation draws.
"""

from __future__ import annotations

import json
import os
import random
import signal
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch.utils.data import TensorDataset

from litnets import cluster, training
from litnets.callbacks.last_checkpoint import LastCheckpoint, repeated_sigterm_ignored
from litnets.config import compose
from litnets.data.augment import BatchAugment
from litnets.data.batches import Chunked, EpochIndexSampler, LoaderBatches, TensorBatches
from litnets.errors import ConfigError
from litnets.quiet import quiet_lightning
from litnets.tasks.base import Task
from test_execution import assert_same_run, tiny_mnist

STEPS = 44  # 4 epochs of 11 batches (the last one short)


def batches(kind: str, augment: bool = True) -> TensorBatches | LoaderBatches:
    x = torch.arange(86.0).reshape(86, 1, 1, 1).expand(86, 1, 4, 4).contiguous()
    y = torch.arange(86)
    sampler = EpochIndexSampler(86, shuffle=True, seed=3)
    options = {"augment": BatchAugment(hflip=True, crop_padding=1) if augment else None}
    if kind == "tensors":
        return TensorBatches((x, y), 8, sampler, **options)
    return LoaderBatches(TensorDataset(x, y), 8, sampler, **options)


@pytest.mark.parametrize("kind", ["tensors", "loader"])
def test_a_resumed_epoch_goes_on_with_the_very_same_batches(kind) -> None:
    straight = batches(kind)
    straight.sampler.set_epoch(2)
    expected = list(straight)
    for stop in (1, 5, 10):
        interrupted = batches(kind)
        interrupted.sampler.set_epoch(2)
        iterator = iter(interrupted)
        for _ in range(stop):
            next(iterator)
        state = interrupted.state_dict()
        assert state == {"epoch": 2, "batches": stop, "batch_size": 8, "batches_per_call": 1}
        resumed = batches(kind)
        resumed.load_state_dict(state)
        resumed.sampler.set_epoch(2)
        rest = list(resumed)
        assert len(rest) == len(expected) - stop
        for (xa, ya), (xb, yb) in zip(rest, expected[stop:], strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)  # augmentation draws replayed
        resumed.sampler.set_epoch(3)  # the position belongs to its epoch only
        assert len(list(resumed)) == len(expected)


def test_an_epoch_end_state_starts_the_next_epoch_whole() -> None:
    finished = batches("tensors")
    finished.sampler.set_epoch(1)
    list(finished)
    resumed = batches("tensors")
    resumed.load_state_dict(finished.state_dict())
    resumed.sampler.set_epoch(2)
    assert len(list(resumed)) == 11


def test_chunks_resume_at_their_boundary() -> None:
    chunked = Chunked(batches("tensors"), 4)
    chunked.sampler.set_epoch(1)
    iterator = iter(chunked)
    next(iterator)
    state = chunked.state_dict()
    assert state["batches"] == 4 and state["batches_per_call"] == 4
    resumed = Chunked(batches("tensors"), 4)
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(1)
    assert [(len(c), c.first_index) for c in resumed] == [(4, 4), (3, 8)]


@pytest.mark.parametrize(
    ("saved", "now", "message"),
    [
        ({"batch_size": 16}, {}, "resume with data.batch_size=16 .not 8."),
        ({"batches_per_call": 4}, {}, "resume with task.steps_per_execution=4 .not 1."),
    ],
)
def test_a_mid_epoch_state_needs_the_same_batches(saved, now, message) -> None:
    state = {"epoch": 0, "batches": 3, "batch_size": 8, "batches_per_call": 1, **saved}
    with pytest.raises(ConfigError, match=message):
        batches("tensors").load_state_dict(state, **now)


def interrupt_at(step: int):
    """Sends this process SIGUSR1 once the optimizer has taken ``step`` steps."""
    original = Task._train_step

    def train_step(self: Task, batch, batch_idx: int):
        loss = original(self, batch, batch_idx)
        if self.global_step == step:
            os.kill(os.getpid(), signal.SIGUSR1)
        return loss

    return train_step


def signalled_run(tmp_path: Path, name: str, overrides: list[str], step: int, monkeypatch) -> dict:
    with monkeypatch.context() as patch:
        patch.setattr(Task, "_train_step", interrupt_at(step))
        summary = training.train(compose(overrides, output_dir=str(tmp_path / name)))
    return summary


# ``None``: a random step, since resuming must be exact wherever the signal lands. 11 and 22
# end an epoch (the epoch is finished before the save); 30 with K=epoch stops at step 33.
CASES = [("1", None), ("4", None), ("1", 22), ("epoch", 30), ("4", 11)]


@pytest.mark.parametrize(("k", "step"), CASES)
def test_sigusr1_mid_epoch_then_resume_is_exact(tmp_path, tiny_data_dir, monkeypatch, k, step):
    step = step or random.randrange(1, STEPS)
    base = tiny_mnist(
        tiny_data_dir, "model.dropout=0.3", "data.augment.hflip=true",
        "data.augment.crop_padding=2", "scheduler=onecycle",
    )  # fmt: skip
    summaries = {"straight": training.train(compose(base, output_dir=str(tmp_path / "straight")))}
    first = signalled_run(
        tmp_path, "split", [*base, f"task.steps_per_execution={k}"], step, monkeypatch
    )
    assert (first["status"], first["stopped_by"]) == ("interrupted", "SIGUSR1"), step
    chunk = {"1": 1, "4": 4, "epoch": 11}[k]
    in_epoch = (step - 1) % 11 + 1
    expected_stop = step - in_epoch + min(-(-in_epoch // chunk) * chunk, 11)  # end of its call
    assert first["global_steps"] == expected_stop, step
    assert Path(first["resume_from"]).name == "last.ckpt"

    resume = compose([f"resume={tmp_path / 'split'}"], output_dir=str(tmp_path / "unused"))
    summaries["split"] = training.train(resume)
    assert summaries["split"]["status"] == "completed"
    assert_same_run(tmp_path, "straight", "split", summaries, fit_only=True)


def test_the_signal_handlers_are_put_back(tmp_path, tiny_data_dir) -> None:
    before = signal.getsignal(signal.SIGUSR1)
    summary = training.train(compose(tiny_mnist(tiny_data_dir), output_dir=str(tmp_path / "r")))
    assert summary["status"] == "completed"
    assert signal.getsignal(signal.SIGUSR1) == before


class TermAfterFirstEpoch(L.Callback):
    """Sends this process SIGTERM at the end of the first epoch, as a cluster would."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 0:
            os.kill(os.getpid(), signal.SIGTERM)


def repeat_sigterm(seen: list[Any]) -> None:
    """srun's repeated SIGTERM, now, unless the handler is the default (it would kill pytest:
    the caller's assertion on ``seen`` fails instead)."""
    seen.append(signal.getsignal(signal.SIGTERM))
    if seen[-1] not in (signal.SIG_DFL, None):
        os.kill(os.getpid(), signal.SIGTERM)


class TermAgainAfterTheFit(TermAfterFirstEpoch):
    """...and again in ``on_fit_end``: after Lightning's teardown has put back the handlers
    it found when the fit began."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        repeat_sigterm(self.seen)


def test_a_repeated_sigterm_cannot_kill_the_run_before_it_is_recorded(
    tmp_path, tiny_data_dir, monkeypatch
) -> None:
    """srun repeats a time limit's SIGTERM, late on a loaded node. From the fit's end on the
    handlers are the ones found before it, and with the default there the repeat killed the
    run before metrics.json: repeats after Lightning's teardown and while recording."""
    from litnets.record import RunRecord

    while_recording: list[Any] = []
    finish = RunRecord.finish

    def recording_finish(self, **kwargs):
        repeat_sigterm(while_recording)
        return finish(self, **kwargs)

    monkeypatch.setattr(RunRecord, "finish", recording_finish)
    before = signal.getsignal(signal.SIGTERM)
    cfg = compose(tiny_mnist(tiny_data_dir), output_dir=str(tmp_path / "r"))
    term = TermAgainAfterTheFit()
    summary = training.train(cfg, extra_callbacks=[term])
    assert (summary["status"], summary["stopped_by"], summary["epochs"]) == (
        "interrupted",
        "SIGTERM",
        1,
    )
    assert len(term.seen) == len(while_recording) == 1
    assert signal.SIG_DFL not in (*term.seen, *while_recording)  # so both repeats were sent
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGTERM) == before


def test_only_a_repeated_stop_request_is_ignored(tmp_path) -> None:
    """Outside a Lightning run, a SIGTERM that repeats no stop request goes where it would
    have gone without the guard (here a handler of the caller's; by default, death)."""
    received: list[int] = []
    callback = LastCheckpoint(str(tmp_path))
    with quiet_lightning():  # its srun hint
        trainer = L.Trainer(callbacks=[callback], logger=False, enable_progress_bar=False)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        with repeated_sigterm_ignored(trainer):
            signal.raise_signal(signal.SIGTERM)  # no stop asked for: passed on
            callback.stop_signal = signal.SIGTERM
            signal.raise_signal(signal.SIGTERM)  # a repeat: ignored
        assert received == [signal.SIGTERM]
        signal.raise_signal(signal.SIGTERM)  # the guard is gone: the caller's handler again
        assert received == [signal.SIGTERM, signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_requeued_job_finds_the_run_it_left(tmp_path, monkeypatch) -> None:

    def run(name: str, **record) -> Path:
        run_dir = tmp_path / "train" / "runs" / name
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps(record))
        return run_dir

    stopped = {"status": "interrupted", "stopped_by": "SIGUSR1"}
    left = run("left", slurm_job="42", **stopped)
    run("other-job", slurm_job="41", **stopped)
    run("finished", slurm_job="42", status="completed")
    run("sigterm", slurm_job="42", status="interrupted", stopped_by="SIGTERM")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    assert cluster.requeued_run(tmp_path) is None  # the first start is a new run
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert cluster.requeued_run(tmp_path) == left
    monkeypatch.setenv("SLURM_JOB_ID", "43")
    assert cluster.requeued_run(tmp_path) is None


def test_a_checkpoint_every_n_steps_resumes_exactly(tmp_path, tiny_data_dir) -> None:
    """``ModelCheckpoint(every_n_train_steps=7)``: its mid-epoch checkpoints resume exactly."""
    base = tiny_mnist(
        tiny_data_dir, "model.dropout=0.3", "data.augment.hflip=true",
        "data.augment.crop_padding=2",
        "+callbacks.steps._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.steps.every_n_train_steps=7", "+callbacks.steps.save_top_k=-1",
        "+callbacks.steps.dirpath=${paths.output_dir}/steps",
    )  # fmt: skip
    straight = training.train(compose(base, output_dir=str(tmp_path / "straight")))
    steps = {
        path.name: torch.load(path, weights_only=True)["global_step"]
        for path in (tmp_path / "straight" / "steps").glob("*.ckpt")
    }
    # Named by the true step and epoch, none overwritten (a logged ``step`` key would rename).
    assert steps == {f"epoch={s // 11}-step={s}.ckpt": s for s in range(7, STEPS, 7)}
    saved = tmp_path / "straight" / "steps" / "epoch=1-step=14.ckpt"
    assert torch.load(saved, weights_only=True)["litnets_batches"]["batches"] == 3  # epoch 1
    resumed = training.train(
        compose([*base, f"ckpt_path='{saved}'"], output_dir=str(tmp_path / "resumed"))
    )
    assert resumed["global_steps"] == straight["global_steps"] == STEPS
    assert resumed["test"] == straight["test"]
    ours, theirs = (
        torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for run in ("resumed", "straight")
    )
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
