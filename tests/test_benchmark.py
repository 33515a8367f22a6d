"""The side-by-side benchmark runs end to end (tiny data: timings here prove nothing)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from conftest import check_ok, run_script
from litnets import benchmark
from litnets.config import compose
from litnets.errors import ConfigError
from litnets.overrides import CommandLine, check


def test_benchmark_runs_all_competitors(tmp_path, tiny_data_dir) -> None:
    overrides = [f"paths.data_dir={tiny_data_dir}", "data.val_size=16", "epochs=2", "repeats=2"]
    overrides += ["data.batch_size=8"]  # 10 batches an epoch: chunks of 8 and of 2
    result = run_script("benchmark.py", *overrides, log_dir=tmp_path)
    check_ok(result)
    (report_file,) = tmp_path.rglob("benchmark.json")
    report = json.loads(report_file.read_text())
    rows = report["runs"]
    gpu_rows = compose([], "benchmark").gpu_competitors  # added on a GPU only
    assert list(rows) == [name for name in benchmark.COMPETITORS if name not in gpu_rows]
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
    assert set(report["ratios"]) >= {
        "litnets_over_plain_epoch", "litnets_over_plain_epoch_by_round", "litnets_over_tutorial_run"
    }  # fmt: skip
    startup = report["startup"]
    assert len(startup["ratios"]) == 2  # one pair a round
    assert 1 < min(startup["ratios"]) <= startup["ratio"] <= max(startup["ratios"])  # import + run
    assert startup["bytecode"] is True  # litnets as pip installs it, like torch and Lightning
    assert Path(importlib.util.cache_from_source(benchmark.__file__)).is_file()
    assert "litnets_k32_over_plain_epoch" in result.stdout
    # each round's figures as it ends, so a run cut short still leaves them in its log
    each_round = re.findall(
        r"litnets benchmark: litnets_k8: epochs( [0-9.]+){2} s, run", result.stdout
    )
    assert len(each_round) == 2
    firsts = re.findall(r"litnets benchmark: round (\d)/2: (\w+) \(", result.stdout)
    assert next(name for round_, name in firsts if round_ == "2") == list(rows)[1]  # rotated
    assert (
        len(re.findall(r"litnets benchmark: start-up: import .* s \(\d+\.\d+×\)", result.stdout))
        == 2
    )


def test_unknown_competitor_is_one_line(tmp_path) -> None:
    result = run_script("benchmark.py", "competitors=[plain,keras]", log_dir=tmp_path)
    assert result.returncode == 2
    assert "unknown competitor(s) keras: choose from tutorial, plain" in result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [("epochs=0", "epochs must be a positive integer, got 0"),
     ("repeats=abc", "repeats must be a positive integer, got 'abc'"),
     ("competitors=plain", "competitors must be a list, each item str, got 'plain'"),
     ("test_ckpt=first", "test_ckpt must be one of 'best', 'last', got 'first'")],  # train's
)  # fmt: skip
def test_the_benchmarks_own_settings_are_checked(override, message) -> None:
    """On the command line and in the config alike: epochs=0 was an IndexError traceback."""
    with pytest.raises(ConfigError, match=message):
        check(CommandLine.parse([override], "benchmark"))
    with pytest.raises(ConfigError, match=message):
        benchmark.benchmark(compose([override], "benchmark"), [override])


def test_a_gpu_benchmark_without_a_gpu_is_one_line(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU is available here"):
        benchmark._device(compose(["trainer=gpu"], "benchmark"))
    assert benchmark._device(compose(["trainer=auto"], "benchmark")).type == "cpu"


def test_graph_rows_run_their_bookkeeping_on_the_cpu(tmp_path, tiny_data_dir, monkeypatch) -> None:
    """The GPU rows through the CPU stand-in for CUDA's capture (``test_graphs``): the
    hand-captured plain loop and ``task.cuda_graph`` train as their eager twins do."""
    from test_graphs import EagerStandIn

    rows = ["plain", "plain_graph", "litnets", "litnets_graph"]
    overrides = [
        f"paths.data_dir={tiny_data_dir}", "data.val_size=16", "data.batch_size=8", "epochs=2",
        "repeats=1", "measure_startup=false", f"competitors=[{','.join(rows)}]", "logger=none",
        "experiment_name=graphs",
    ]  # fmt: skip
    cfg = compose(overrides, "benchmark", output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="plain_graph, litnets_graph capture CUDA graphs"):
        benchmark.benchmark(cfg, overrides)
    stand_in = EagerStandIn()
    monkeypatch.setattr(benchmark.graphs, "BACKEND", stand_in)
    report = benchmark.benchmark(cfg, overrides)
    assert list(report["runs"]) == rows
    # 10 full batches an epoch, 2 epochs. plain_graph: 3 warm-up steps, 17 replays. litnets
    # (a chunk is the whole epoch): epoch 0 step by step, 3 warm-up and 7 replays of the step
    # graph; epoch 1 one replay of the chunk graph.
    assert stand_in.replayed == [2 * 10 - 3, 10 - 3, 1]
    runs = report["runs"]
    assert runs["plain_graph"]["test_acc"] == pytest.approx(runs["plain"]["test_acc"], abs=0.05)
    assert runs["litnets_graph"]["test_acc"] == pytest.approx(runs["litnets"]["test_acc"], abs=0.05)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_benchmark_adds_the_graph_rows(tmp_path, tiny_data_dir) -> None:
    overrides = [
        f"paths.data_dir={tiny_data_dir}", "data.val_size=16", "data.batch_size=8", "epochs=2",
        "repeats=1", "measure_startup=false", "competitors=[plain,litnets]", "trainer=gpu",
    ]  # fmt: skip
    check_ok(run_script("benchmark.py", *overrides, log_dir=tmp_path))
    (report_file,) = tmp_path.rglob("benchmark.json")
    runs = json.loads(report_file.read_text())["runs"]
    assert list(runs) == ["plain", "litnets", "plain_graph", "litnets_graph", "litnets_compile"]
    assert runs["plain_graph"]["test_acc"] == pytest.approx(runs["plain"]["test_acc"], abs=0.05)


def test_each_round_starts_one_row_later() -> None:
    names = ["tutorial", "plain", "lightning"]
    orders = [benchmark.round_order(names, round_) for round_ in range(1, 5)]
    assert orders == [
        ["tutorial", "plain", "lightning"],
        ["plain", "lightning", "tutorial"],
        ["lightning", "tutorial", "plain"],
        ["tutorial", "plain", "lightning"],
    ]
