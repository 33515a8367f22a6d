"""Outgrowing one process: DDP ranks, torchrun, sweeps, Optuna, the SLURM launcher config."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir

from conftest import REPO, SCRIPTS, check_ok, read_metrics, run_dirs, run_script
from litnets import config

DDP_IRIS = [
    "trainer=ddp_cpu",
    "trainer.devices=2",
    "data.batch_size=16",  # 96 training rows: 48 per rank, 3 steps of 16
    "trainer.max_epochs=60",
]


def test_ddp_ranks_split_each_epoch_and_share_one_run_dir(tmp_path) -> None:
    seen = tmp_path / "seen"
    probe = [
        "+callbacks.probe._target_=ddp_probe.RecordSeenSamples",
        f"+callbacks.probe.folder={seen}",
    ]
    result = run_script(
        "train.py", *DDP_IRIS, *probe, log_dir=tmp_path / "logs", PYTHONPATH=str(REPO / "tests")
    )
    check_ok(result)

    records = [json.loads((seen / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    train = Counter(tuple(row) for row in records[0]["train"])
    per_rank = [Counter(tuple(row) for row in r["seen"]) for r in records]
    assert [sum(c.values()) for c in per_rank] == [48, 48]  # half the 96 rows each
    together = per_rank[0] + per_rank[1]
    assert together == train  # every training row once, none twice (Iris has equal rows)
    finals = [json.loads((seen / f"final{r}.json").read_text()) for r in (0, 1)]
    assert [f["automatic_optimization"] for f in finals] == [False, False]  # the lean step
    assert finals[0]["weights"] == finals[1]["weights"]  # its gradients were averaged

    (run_dir,) = run_dirs(tmp_path / "logs")
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["test"]["test/acc"] >= 0.9
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert result.stdout.count("litnets: completed") == 1  # rank 0 reports


def test_torchrun_ranks_share_one_run_dir(tmp_path) -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(SCRIPTS / "train.py"), *DDP_IRIS, "pictures=false",
    ]  # fmt: skip
    env = {**os.environ, "LITNETS_LOG_DIR": str(tmp_path)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path)
    assert run_dir.name.startswith("torchrun-")
    assert read_metrics(run_dir)["test"]["test/acc"] >= 0.9
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log", "train_rank1.log"]
    assert result.stdout.count("litnets: completed") == 1


def test_two_torchrun_nodes_on_one_machine_make_one_run(tmp_path) -> None:
    """``--nnodes=2``, one launch per node (here both on 127.0.0.1): one run, disjoint shards."""
    seen = tmp_path / "seen"
    env = {
        **os.environ,
        "LITNETS_LOG_DIR": str(tmp_path / "logs"),
        "PYTHONPATH": str(REPO / "tests"),
    }

    def node(rank: int) -> list[str]:
        return [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
            f"--node_rank={rank}", "--master_addr=127.0.0.1", "--master_port=29531",
            "--rdzv_id=two-nodes", str(SCRIPTS / "train.py"), *DDP_IRIS, "trainer.devices=1",
            "trainer.num_nodes=2", "trainer.max_epochs=20", "pictures=false",
            "+callbacks.probe._target_=ddp_probe.RecordSeenSamples",
            f"+callbacks.probe.folder={seen}",
        ]  # fmt: skip

    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    launches = [subprocess.Popen(node(r), env=env, cwd=tmp_path, **pipes) for r in (0, 1)]
    outputs = [launch.communicate(timeout=600) for launch in launches]
    for launch, (_, stderr) in zip(launches, outputs, strict=True):
        assert launch.returncode == 0, stderr[-3000:]
    (run_dir,) = run_dirs(tmp_path / "logs")  # metrics.json written once, in one dir
    assert run_dir.name == "torchrun-two-nodes"
    assert read_metrics(run_dir)["status"] == "completed"
    assert sum(stdout.count("litnets: completed") for stdout, _ in outputs) == 1
    records = [json.loads((seen / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    per_rank = [Counter(tuple(row) for row in r["seen"]) for r in records]
    assert per_rank[0] + per_rank[1] == Counter(tuple(row) for row in records[0]["train"])
    finals = [json.loads((seen / f"final{r}.json").read_text()) for r in (0, 1)]
    assert finals[0]["weights"] == finals[1]["weights"]


def test_ddp_jobs_of_a_local_sweep_run_in_ranks_of_their_own(tmp_path) -> None:
    """``-m`` with ``trainer=ddp_cpu``: litnets spawns each job's two ranks (litnets.spawn)."""
    probe = [
        "+callbacks.probe._target_=ddp_probe.RecordSeenSamples",
        "+callbacks.probe.folder=${paths.output_dir}/seen",
    ]
    result = run_script(
        "train.py", "-m", *DDP_IRIS, *probe, "pictures=false", "seed=1,2",
        log_dir=tmp_path, PYTHONPATH=str(REPO / "tests"),
    )  # fmt: skip
    check_ok(result)
    runs = run_dirs(tmp_path)
    assert [run.name for run in runs] == ["0", "1"]
    results = []
    for run in runs:
        metrics = read_metrics(run)
        assert metrics["status"] == "completed"
        assert metrics["global_steps"] == 180  # 60 epochs of 3 steps: 48 rows per rank
        records = [json.loads((run / "seen" / f"rank{r}.json").read_text()) for r in (0, 1)]
        assert [r["world_size"] for r in records] == [2, 2]
        per_rank = [Counter(tuple(row) for row in r["seen"]) for r in records]
        assert per_rank[0] + per_rank[1] == Counter(tuple(row) for row in records[0]["train"])
        finals = [json.loads((run / "seen" / f"final{r}.json").read_text()) for r in (0, 1)]
        assert finals[0]["weights"] == finals[1]["weights"]
        results.append(finals[0]["weights"])
    assert results[0] != results[1]  # seed 1 and seed 2: two jobs, two results
    assert result.stdout.count("litnets: completed") == 2  # each job reports once


def test_ddp_on_several_nodes_inside_a_local_sweep_is_refused(tmp_path) -> None:
    result = run_script(
        "train.py", "-m", *DDP_IRIS, "trainer.num_nodes=2", "seed=1,2", log_dir=tmp_path
    )
    assert result.returncode == 1
    assert "litnets: error: a -m sweep starts DDP ranks on this machine only" in result.stderr


def test_sweep_runs_every_job_in_its_own_dir_and_survives_a_bad_one(tmp_path) -> None:
    # A mistake in the overrides stops a sweep before it starts (tests/test_overrides.py);
    # data missing for some jobs is only found when they run.
    result = run_script(
        "train.py", "-m", "optimizer=sgd,adam", "data=iris,mnist", "model=mlp",
        f"paths.data_dir={tmp_path / 'no-data'}", "trainer.max_epochs=20", "pictures=false",
        log_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1  # the two MNIST jobs fail; the sweep goes on
    assert result.stderr.count("litnets: error: MNIST files not found") == 2
    assert "litnets: 2 sweep job(s) failed" in result.stderr
    runs = run_dirs(tmp_path)
    assert len(runs) == 2
    for run_dir in runs:
        assert read_metrics(run_dir)["status"] == "completed"
        assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    optimizers = {
        yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["optimizer"]["_target_"]
        for run in runs
    }
    assert optimizers == {"torch.optim.SGD", "torch.optim.Adam"}


def test_optuna_search_reports_its_best_trial(tmp_path) -> None:
    result = run_script(
        "train.py", "hparams_search=iris_mlp", "hydra.sweeper.n_trials=2",
        "trainer.max_epochs=60", "pictures=false", log_dir=tmp_path,
    )  # fmt: skip
    check_ok(result)
    trials = [read_metrics(run) for run in run_dirs(tmp_path)]
    assert len(trials) == 2
    assert all(t["objective"] == t["best_val"]["val/acc"] for t in trials)
    (results,) = tmp_path.rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    assert best["best_value"] == pytest.approx(max(t["objective"] for t in trials))
    assert set(best["best_params"]) == {"optimizer.lr", "model.hidden_sizes.0", "model.activation"}


def search_of_batch_sizes(tmp_path: Path, sizes: str) -> subprocess.CompletedProcess:
    """A 4-trial random Optuna search over ``data.batch_size: choice(<sizes>)`` (seed 1)."""
    presets = tmp_path / "configs" / "hparams_search"
    presets.mkdir(parents=True)
    (presets / "sizes.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /hydra/sweeper: optuna\n"
        "  - override /hydra/sweeper/sampler: random\n"
        "optimized_metric: val/acc\n"
        "hydra:\n  mode: MULTIRUN\n  sweeper:\n    direction: maximize\n    n_trials: 4\n"
        f"    sampler:\n      seed: 1\n    params:\n      data.batch_size: choice({sizes})\n"
    )
    return run_script(
        "train.py", "--config-dir", str(tmp_path / "configs"), "hparams_search=sizes",
        "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=1", "pictures=false",
        "logger=none", log_dir=tmp_path,
    )  # fmt: skip


def test_optuna_search_goes_on_past_a_failed_trial(tmp_path) -> None:
    """A failed trial is recorded as failed and the search goes on to its best: it stopped
    with a traceback (hydra-optuna-sweeper told Optuna the failed job's NaN again)."""
    result = search_of_batch_sizes(tmp_path, "16, 0")  # seed 1 draws 0, 0, 16, 0
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("litnets: error: data.batch_size must be a positive integer") == 3
    assert "litnets: 3 sweep job(s) failed" in result.stderr
    (results,) = tmp_path.rglob("optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    assert best["best_params"] == {"data.batch_size": 16}
    (trained,) = [read_metrics(run) for run in run_dirs(tmp_path)]
    assert best["best_value"] == pytest.approx(trained["objective"])


def test_optuna_search_whose_every_trial_failed_ends_in_one_line(tmp_path) -> None:
    """Optuna's "No trials are completed yet" came as a traceback after the trials' errors."""
    result = search_of_batch_sizes(tmp_path, "0, -1")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.count("litnets: error: data.batch_size must be a positive integer") == 4
    assert result.stderr.strip().splitlines()[-1] == (
        "litnets: error: no trial of the search completed (4 failed, each with its error above)"
    )
    assert not run_dirs(tmp_path)


@pytest.mark.parametrize("preset", ["iris_mlp", "mnist_mlp"])
def test_search_presets_maximise_validation_accuracy(preset) -> None:
    cfg = compose_with_hydra([f"hparams_search={preset}"])
    assert cfg.optimized_metric == "val/acc"
    assert cfg.hydra.sweeper.direction == "maximize"
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.data._target_.split(".")[-1].lower().startswith(preset.split("_")[0])


def test_slurm_launcher_follows_the_trainer() -> None:
    overrides = ["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]
    launcher = compose_with_hydra(overrides).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (2, 4, 4)


def compose_with_hydra(overrides: list[str]):
    with initialize_config_dir(str(config.CONFIG_DIR), version_base="1.3"):
        return hydra_compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("env", "name", "rank_zero"),
    [
        ({}, None, True),
        ({"TORCHELASTIC_RUN_ID": "abc", "RANK": "1"}, "torchrun-abc", False),
        ({"TORCHELASTIC_RUN_ID": "abc", "RANK": "0"}, "torchrun-abc", True),
        ({"SLURM_NTASKS": "8", "SLURM_JOB_ID": "42", "SLURM_PROCID": "3"}, "slurm-42-0", False),
        ({"SLURM_NTASKS": "1", "SLURM_JOB_ID": "42", "SLURM_PROCID": "0"}, None, True),
        ({"LOCAL_RANK": "1"}, None, False),  # Lightning's own DDP launcher
        ({"LITNETS_RUN_NAME": "mine"}, "mine", True),
    ],
)
def test_run_name_and_rank_come_from_the_launcher(monkeypatch, env, name, rank_zero) -> None:
    for var in ("TORCHELASTIC_RUN_ID", "RANK", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_PROCID",
                "LOCAL_RANK", "NODE_RANK", "LITNETS_RUN_NAME"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    got = config.run_name()
    if name is None:  # <date>_<time>_<pid>
        assert got.endswith(f"_{os.getpid()}") and got[:4].isdigit()
    else:
        assert got == name
    assert config.launched_rank_is_zero() is rank_zero


def test_scaling_docs_name_every_command() -> None:
    """Each way of scaling out appears in the README as a litnets command (whole words)."""
    readme = (Path(REPO) / "README.md").read_text()
    patterns = [
        r"trainer=ddp_cpu\b", r"trainer=ddp(?![_\w])", r"trainer\.num_nodes=\d",
        r"torchrun [^`]*-m litnets train", r"-m hydra/launcher=slurm\b",
        r"hparams_search=\w", r"litnets train -m \w",
    ]  # fmt: skip
    for pattern in patterns:
        assert re.search(pattern, readme), pattern
