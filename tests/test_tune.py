"""``tune=lr_find``: Lightning's learning-rate range test through litnets' own optimizer step."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from conftest import check_ok, read_metrics, run_dirs, run_script
from test_pictures import summaries


def test_lr_find_prints_a_ready_override_and_plots_the_test(tmp_path) -> None:
    result = run_script("train.py", "tune=lr_find", "tune.num_training=60", log_dir=tmp_path)
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path)
    found = read_metrics(run_dir)["lr_find"]
    lrs = found["lrs"]
    assert len(lrs) == 60 and lrs == sorted(lrs)  # one rate per step, rising
    # a loss for each step: the finder read the losses litnets' lean optimizer step returns
    assert all(math.isfinite(loss) for loss in found["losses"])
    assert min(lrs) <= found["suggestion"] <= max(lrs)  # inside the plotted range
    assert f"litnets: suggested learning rate: {found['override']}" in result.stderr
    assert found["override"] == f"optimizer.lr={found['suggestion']:.3g}"
    assert Path(found["plot"]).stat().st_size > 10_000  # a real PNG figure
    assert "tune/lr_find" in summaries(run_dir)  # and the same figure in TensorBoard
    assert not list(run_dir.rglob("*.ckpt"))  # the finder's own checkpoint is cleaned up


def test_lr_find_then_trains_at_the_suggested_rate(tmp_path) -> None:
    args = ["tune=lr_find", "tune.train=true", "tune.num_training=40", "trainer.max_epochs=100"]
    check_ok(run_script("train.py", *args, "pictures=false", log_dir=tmp_path))
    (run_dir,) = run_dirs(tmp_path)
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed" and "test" in metrics
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    lr = checkpoint["hyper_parameters"]["config"]["optimizer"]["lr"]
    assert lr == metrics["lr_find"]["suggestion"]
    assert checkpoint["optimizer_states"][0]["param_groups"][0]["lr"] == lr  # it trained at it


def test_range_test_settings_are_one_line_before_it_runs(tmp_path) -> None:
    """``tune`` builds nothing, so nothing checked it: these failed inside Lightning's tuner."""
    for given, message in (
        ("tune.num_training=0", "tune.num_training must be a positive integer, got 0 (int)"),
        ("tune.mode=abc", "tune.mode must be one of 'exponential', 'linear', got 'abc' (str)"),
        ("tune.max_lr=1e-7", "tune.min_lr=1e-06 must be below tune.max_lr=1e-07"),
    ):
        result = run_script("train.py", "tune=lr_find", given, log_dir=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == f"litnets: error: {message}"
    assert not run_dirs(tmp_path) and not list(tmp_path.glob("train/runs/*"))
