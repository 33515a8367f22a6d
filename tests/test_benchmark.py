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
    overrides = [f"paths.data_dir={tiny_data_dir}", "data.val_size=16", "epochs=2"]
    result = run_script("benchmark.py", *overrides, log_dir=tmp_path)
    check_ok(result)
    (report_file,) = tmp_path.rglob("benchmark.json")
    report = json.loads(report_file.read_text())
    assert set(report["runs"]) == {"tutorial", "plain", "litnets"}
    for row in report["runs"].values():
        assert row["first_epoch_s"] > 0 and row["steady_epoch_s"] > 0
        assert 0.0 <= row["test_acc"] <= 1.0
    # plain does litnets' work: the same training split, validation held out
    assert report["runs"]["litnets"]["samples_per_epoch"] == 96 - 16
    assert report["runs"]["plain"]["samples_per_epoch"] == 96 - 16
    assert report["runs"]["tutorial"]["samples_per_epoch"] == 96  # as the tutorial writes it
    assert report["epoch_ratio_litnets_over_plain"] > 0
    assert report["startup"]["ratio"] > 0
    assert "litnets_over_tutorial" in result.stdout


def test_a_gpu_benchmark_without_a_gpu_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
        benchmark._device(compose(["trainer=gpu"], "benchmark"))
    assert benchmark._device(compose(["trainer=auto"], "benchmark")).type == "cpu"
