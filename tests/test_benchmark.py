"""The side-by-side benchmark runs end to end (tiny data: timings here prove nothing)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import check_ok, run_script
from litnets import benchmark
from litnets.config import compose
from litnets.errors import ConfigError


def test_benchmark_runs_all_competitors(tmp_path, tiny_data_dir) -> None:
    overrides = [f"paths.data_dir={tiny_data_dir}", "data.val_size=16", "epochs=2", "repeats=2"]
    overrides += ["data.batch_size=8"]  # 10 batches an epoch: chunks of 8 and of 2
    result = run_script("benchmark.py", *overrides, log_dir=tmp_path)
    check_ok(result)
    (report_file,) = tmp_path.rglob("benchmark.json")
    report = json.loads(report_file.read_text())
    rows = report["runs"]
    assert list(rows) == list(benchmark.COMPETITORS)
    for row in rows.values():
        assert 0 < row["fastest_epoch_s"] <= row["median_epoch_s"]
        assert row["first_epoch_s"] > 0 and row["total_s"] > 0 and row["repeats"] == 2
        assert 0.0 <= row["test_acc"] <= 1.0
    # plain and Lightning's floor do litnets' work: the same training split, validation held out
    for name in ("plain", "lightning", *benchmark.LITNETS_ROWS):
        assert rows[name]["samples_per_epoch"] == 96 - 16, name
    assert rows["tutorial"]["samples_per_epoch"] == 96  # as the tutorial writes it
    # every litnets row trained the same weights: chunks change no result
    assert len({rows[name]["test_acc"] for name in benchmark.LITNETS_ROWS}) == 1
    runs = tmp_path.rglob("runs/litnets_k8-*/metrics.json")
    assert len(list(runs)) == 2  # each round in its own run dir
    assert set(report["ratios"]) >= {"litnets_over_plain_epoch", "litnets_over_tutorial_run"}
    assert report["startup"]["ratio"] > 0
    assert "litnets_k32_over_plain_epoch" in result.stdout


def test_unknown_competitor_is_one_line(tmp_path) -> None:
    result = run_script("benchmark.py", "competitors=[plain,keras]", log_dir=tmp_path)
    assert result.returncode == 2
    assert "unknown competitor(s) keras: choose from tutorial, plain" in result.stderr


def test_a_gpu_benchmark_without_a_gpu_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
        benchmark._device(compose(["trainer=gpu"], "benchmark"))
    assert benchmark._device(compose(["trainer=auto"], "benchmark")).type == "cpu"
