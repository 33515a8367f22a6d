"""``debug=`` presets act through litnets' own batch iterators, and never look like results."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import check_ok, read_metrics, run_dirs, run_script
from litnets import training
from litnets.config import compose, open_configs


class BatchProbe(L.Callback):
    """Records the targets of every batch each stage sees, per epoch."""

    def __init__(self) -> None:
        self.seen: dict[str, list[list[list[int]]]] = {"train": [], "val": [], "test": []}
        self.anomaly_detection: bool | None = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.seen["train"].append([])

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen["train"][-1].append(batch[1].tolist())
        self.anomaly_detection = torch.is_anomaly_enabled()

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.seen["val"].append([])

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        if not trainer.sanity_checking:
            self.seen["val"][-1].append(batch[1].tolist())

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self.seen["test"].append([])

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self.seen["test"][-1].append(batch[1].tolist())


SMALL_MNIST = ["data=mnist", "model=mlp", "data.val_size=16", "data.batch_size=8"]
SMALL_MNIST += ["data.eval_batch_size=4", "pictures=false", "logger=none"]


def debug_run(tmp_path: Path, data_dir: Path, preset: str, *extra: str) -> tuple[dict, BatchProbe]:
    overrides = [*SMALL_MNIST, f"paths.data_dir={data_dir}", f"debug={preset}", *extra]
    cfg = compose(overrides, output_dir=str(tmp_path / preset))
    probe = BatchProbe()
    return training.train(cfg, extra_callbacks=[probe]), probe


def test_limit_takes_a_few_batches_of_each_split(tmp_path, tiny_data_dir) -> None:
    summary, probe = debug_run(tmp_path, tiny_data_dir, "limit")
    assert summary["debug"] == "limit"
    assert [len(epoch) for epoch in probe.seen["train"]] == [5, 5, 5]  # of 10 per epoch
    assert [len(epoch) for epoch in probe.seen["val"]] == [2, 2, 2]  # of 4
    assert [len(epoch) for epoch in probe.seen["test"]] == [2]  # of 12
    assert summary["global_steps"] == 15
    assert probe.seen["train"][0] != probe.seen["train"][1]  # still shuffled per epoch


def test_overfit_repeats_the_same_batches(tmp_path, tiny_data_dir) -> None:
    summary, probe = debug_run(tmp_path, tiny_data_dir, "overfit", "data.augment.hflip=true")
    epochs = probe.seen["train"]
    assert len(epochs) == 20 and all(len(epoch) == 3 for epoch in epochs)
    assert all(epoch == epochs[0] for epoch in epochs)  # the same 3 batches, in order
    assert summary["debug"] == "overfit"


def test_fast_dev_run_trains_one_batch_and_saves_nothing(tmp_path, tiny_data_dir) -> None:
    summary, probe = debug_run(tmp_path, tiny_data_dir, "fdr")
    assert [len(e) for e in probe.seen["train"]] == [1]
    assert [len(e) for e in probe.seen["test"]] == [1]
    assert summary["debug"] == "fdr"
    assert summary["checkpoints"] == {"best": None, "last": None}
    assert not list((tmp_path / "fdr").rglob("*.ckpt"))


def test_profiler_writes_its_report_to_the_run_dir(tmp_path, tiny_data_dir) -> None:
    debug_run(tmp_path, tiny_data_dir, "profiler")
    report = tmp_path / "profiler" / "fit-profile.txt"
    assert "run_training_epoch" in report.read_text()


def test_anomaly_detection_is_on_while_training(tmp_path, tiny_data_dir) -> None:
    summary, probe = debug_run(tmp_path, tiny_data_dir, "anomaly", "trainer.max_epochs=1")
    assert probe.anomaly_detection is True
    assert summary["status"] == "completed"


def test_fdr_runs_every_preset_under_logs_debug(tmp_path, tiny_data_dir) -> None:
    with open_configs() as configs:
        presets = configs.options("experiment")
    args = ["-m", "experiment=glob(*)", "debug=fdr", "data.val_size=16", "pictures=false"]
    result = run_script("train.py", *args, f"paths.data_dir={tiny_data_dir}", log_dir=tmp_path)
    check_ok(result)
    runs = run_dirs(tmp_path)
    assert len(runs) == len(presets) >= 8
    for run_dir in runs:
        assert "/debug/multiruns/" in str(run_dir)  # apart from real results
        metrics = read_metrics(run_dir)
        assert (metrics["status"], metrics["debug"]) == ("completed", "fdr")
        assert metrics["global_steps"] == 1
    assert not list(tmp_path.rglob("*.ckpt"))
    assert "debug run (fdr, not a result)" in result.stdout


@pytest.mark.parametrize("preset", ["fdr", "overfit", "limit", "profiler", "anomaly"])
def test_every_debug_preset_composes_with_every_experiment(preset) -> None:
    with open_configs() as configs:
        for experiment in configs.options("experiment"):
            cfg = configs.compose([f"experiment={experiment}", f"debug={preset}"])
            assert cfg.task_name == "debug" and cfg.debug_preset == preset
