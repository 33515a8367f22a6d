"""A real one-node SLURM cluster (``scripts/slurm_cluster.sh``): submitit sweeps, srun DDP.

The cluster is started once for this file, with its state in a temporary dir, and stopped
afterwards. The tests skip, saying why, only where it cannot run at all: not root, or
Debian's packages cannot be installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import REPO, SCRIPTS, check_ok, read_metrics, run_dirs

CLUSTER = REPO / "scripts" / "slurm_cluster.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that reaches the cluster (``SLURM_CONF``)."""
    if os.geteuid() != 0:
        pytest.skip("the local SLURM cluster runs its daemons as root")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=900
    )
    if started.returncode != 0:
        apt_log = state / "apt.log"
        if apt_log.is_file() and "Unable to locate package" in apt_log.read_text():
            pytest.skip(f"SLURM's Debian packages cannot be installed here: see {apt_log}")
        pytest.fail(f"the SLURM cluster did not start:\n{started.stderr[-3000:]}")
    yield {**os.environ, "SLURM_CONF": str(state / "slurm.conf")}
    subprocess.run(["bash", str(CLUSTER), "stop", str(state)], check=False, timeout=60)


def slurm_run(
    command: list[str], env: dict[str, str], log_dir: Path
) -> subprocess.CompletedProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    environment = {**env, "LITNETS_LOG_DIR": str(log_dir), "PYTHONPATH": str(REPO / "tests")}
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        cwd=log_dir,
        stdin=subprocess.DEVNULL,
    )


def test_submitit_sweep_runs_each_job_on_the_cluster(slurm, tmp_path) -> None:
    result = slurm_run(
        [sys.executable, str(SCRIPTS / "train.py"), "-m", "hydra/launcher=slurm",
         "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=null",
         "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1", "experiment=iris_mlp",
         "trainer.max_epochs=30", "pictures=false", "optimizer.lr=0.005,0.01"],
        slurm, tmp_path,
    )  # fmt: skip
    check_ok(result)
    runs = run_dirs(tmp_path)
    assert [run.name for run in runs] == ["0", "1"]
    lrs = set()
    for run in runs:
        assert read_metrics(run)["status"] == "completed"
        lrs.add((run / ".hydra" / "overrides.yaml").read_text().count("optimizer.lr=0.005"))
    assert lrs == {0, 1}  # one job per swept value
    # Each job ran as a task of one SLURM job array: submitit kept a log of each.
    logs = sorted(log.parent.name for log in runs[0].parent.glob(".submitit/*/*_log.out"))
    assert len(logs) == 2 and logs[0].endswith("_0") and logs[1].endswith("_1"), logs


def test_two_task_srun_ddp_shares_one_run_dir(slurm, tmp_path) -> None:
    seen = tmp_path / "seen"
    result = slurm_run(
        ["srun", "--immediate=120", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1", sys.executable,
         str(SCRIPTS / "train.py"), "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=16",
         "trainer.max_epochs=60", "pictures=false",
         "+callbacks.probe._target_=ddp_probe.RecordSeenSamples", f"+callbacks.probe.folder={seen}"],
        slurm, tmp_path / "logs",
    )  # fmt: skip
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path / "logs")
    assert run_dir.name.startswith("slurm-")  # named after the job: both ranks meet there
    assert read_metrics(run_dir)["status"] == "completed"
    assert result.stdout.count("litnets: completed") == 1
    records = [json.loads((seen / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in records] == [2, 2]
    per_rank = [Counter(tuple(row) for row in r["seen"]) for r in records]
    assert [sum(c.values()) for c in per_rank] == [48, 48]
    assert per_rank[0] + per_rank[1] == Counter(tuple(row) for row in records[0]["train"])
    finals = [json.loads((seen / f"final{r}.json").read_text()) for r in (0, 1)]
    assert finals[0]["weights"] == finals[1]["weights"]
