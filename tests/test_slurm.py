"""A real one-node SLURM cluster (``scripts/slurm_cluster.sh``): submitit sweeps, srun DDP,
pre-emption (SIGUSR1 -> requeue -> the exact uninterrupted result), a job past its time limit.

The cluster is started once for this file, with its state in a temporary dir, and stopped
afterwards. The tests skip, saying why, only where it cannot run at all: not root, or
Debian's packages cannot be installed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from conftest import REPO, SCRIPTS, check_ok, make_mnist_like, read_metrics, run_dirs, run_script

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


# ---- pre-emption and time limits ---------------------------------------------------------------

# Tiny MNIST, with dropout and augmentation: every random stream must resume exactly.
LONG_RUN = [
    "experiment=mnist_mlp", "data.val_size=10", "data.batch_size=8", "seed=7", "pictures=false",
    "model.dropout=0.3", "data.augment.hflip=true", "data.augment.crop_padding=2",
    "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false",
]  # fmt: skip
EPOCHS = 300  # 11 steps each, ≈ 15 s


@pytest.fixture(scope="module")
def long_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_mnist_like(root, "MNIST")
    return root


@pytest.fixture(scope="module")
def straight(long_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run, outside SLURM, that the stopped ones must equal."""
    log_dir = tmp_path_factory.mktemp("straight")
    args = [*LONG_RUN, f"paths.data_dir={long_data}", f"trainer.max_epochs={EPOCHS}"]
    check_ok(run_script("train.py", *args, log_dir=log_dir))
    (run_dir,) = run_dirs(log_dir)
    return run_dir


def submit(slurm: dict[str, str], log_dir: Path, args: list[str], *sbatch: str) -> str:
    """``sbatch`` a job running ``scripts/train.py`` as one ``srun`` task; its id."""
    log_dir.mkdir(parents=True, exist_ok=True)
    script = log_dir / "job.sh"
    command = shlex.join(["srun", sys.executable, str(SCRIPTS / "train.py"), *args])
    script.write_text(f"#!/bin/bash\n{command}\n")
    env = {**slurm, "LITNETS_LOG_DIR": str(log_dir), "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        ["sbatch", "--parsable", "--open-mode=append", f"--output={log_dir}/job-%j.out", *sbatch,
         str(script)],
        capture_output=True, text=True, env=env, cwd=log_dir, check=True,
    )  # fmt: skip
    return result.stdout.strip().split(";")[0]


def job_state(slurm: dict[str, str], job: str) -> str:
    result = subprocess.run(
        ["scontrol", "show", "job", job], capture_output=True, text=True, env=slurm
    )
    fields = dict(f.split("=", 1) for f in result.stdout.split() if "=" in f)
    return fields.get("JobState", "GONE")


def node_state(slurm: dict[str, str]) -> str:
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=slurm)
    return result.stdout.strip()


FINAL_STATES = {"COMPLETED", "FAILED", "TIMEOUT", "CANCELLED", "OUT_OF_MEMORY", "GONE"}


def ended(slurm: dict[str, str], job: str) -> Callable[[], bool]:
    return lambda: job_state(slurm, job) in FINAL_STATES


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")


def trained_epochs(log_dir: Path) -> int:
    """The epoch of the newest last.ckpt under ``log_dir`` (-1 before the first)."""
    for path in log_dir.rglob("last.ckpt"):
        try:
            return torch.load(path, weights_only=True)["epoch"]
        except Exception:  # being written: look again
            return -1
    return -1


def assert_same_result(run_dir: Path, straight: Path) -> None:
    ours, theirs = read_metrics(run_dir), read_metrics(straight)
    assert ours["status"] == "completed"
    assert (ours["epochs"], ours["global_steps"]) == (theirs["epochs"], theirs["global_steps"])
    assert ours["test"] == theirs["test"]
    assert ours["best_val"] == theirs["best_val"]
    load = lambda run: torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # noqa: E731
    a, b = load(run_dir)["state_dict"], load(straight)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_preempted_job_requeues_and_resumes_exactly(slurm, tmp_path, long_data, straight):
    """``scancel --signal=USR1`` mid-run: last.ckpt after that step, the job requeued, the
    requeued start continues the same run dir, and the result is the uninterrupted one."""
    args = [*LONG_RUN, f"paths.data_dir={long_data}", f"trainer.max_epochs={EPOCHS}"]
    job = submit(slurm, tmp_path, args)
    wait_for(lambda: trained_epochs(tmp_path) >= 20, "training is under way")
    subprocess.run(["scancel", "--signal=USR1", job], env=slurm, check=True)
    wait_for(lambda: job_state(slurm, job) == "PENDING", "the job is requeued")
    (run_dir,) = run_dirs(tmp_path)
    stopped = read_metrics(run_dir)
    assert (stopped["status"], stopped["stopped_by"], stopped["slurm_job"]) == (
        "interrupted",
        "SIGUSR1",
        job,
    )
    assert 20 <= stopped["epochs"] < EPOCHS
    requeued_at, requeue_second = time.monotonic(), int(time.time())
    # SLURM holds a requeued job back for a while; start it now, once the node has finished
    # cleaning up after the first start and the clock is past the second of the requeue:
    # slurmd revoked the first start's credential then, and refuses any credential of the
    # job made up to that second, whole seconds compared ("Killing non-startable batch
    # JobId=1: Job credential revoked" in slurmctld.log when restarted within it).
    wait_for(
        lambda: node_state(slurm) == "idle" and int(time.time()) > requeue_second,
        "the node is idle again, in a later second",
    )
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], env=slurm, check=True)
    wait_for(ended(slurm, job), "the job ends")
    output = (tmp_path / f"job-{job}.out").read_text()
    assert job_state(slurm, job) in ("COMPLETED", "GONE"), output[-3000:]
    assert output.count("litnets: requeued SLURM job") == 2  # requeued, then resumed
    assert run_dirs(tmp_path) == [run_dir]  # the same run dir, no second one
    assert len(list(run_dir.glob(".hydra/resumed-*"))) == 1
    assert_same_result(run_dir, straight)
    # The resumed start-up is this process's own, not the time since the first start.
    assert read_metrics(run_dir)["startup_s"] < time.monotonic() - requeued_at


def test_job_past_its_time_limit_resumes_when_resubmitted(slurm, tmp_path, long_data) -> None:
    """SLURM ends a one-minute job with SIGTERM: the epoch finishes, last.ckpt is saved, and
    a new job with ``resume=<run dir>`` trains on from there. (That resuming is exact is shown
    above and in tests/test_preemption.py; this is about the time limit.)"""
    # Far more epochs than a minute holds: SLURM checks time limits every 30 s, so the job
    # ends between one and one and a half minutes in, whatever the machine's speed.
    args = [*LONG_RUN, f"paths.data_dir={long_data}", "trainer.max_epochs=100000"]
    job = submit(slurm, tmp_path, args, "--time=1")
    wait_for(ended(slurm, job), "it times out", 240)
    assert job_state(slurm, job) == "TIMEOUT"
    (run_dir,) = run_dirs(tmp_path)
    stopped = read_metrics(run_dir)
    assert (stopped["status"], stopped["stopped_by"]) == ("interrupted", "SIGTERM")
    assert 0 < stopped["epochs"] < 100000
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["epoch"] == stopped["epochs"] - 1  # saved at the stop: the epoch finished
    epochs = stopped["epochs"] + 20  # the resumed job's own, shorter, end
    again = submit(slurm, tmp_path / "again", [f"resume={run_dir}", f"trainer.max_epochs={epochs}"])
    wait_for(ended(slurm, again), "it ends")
    output = (tmp_path / "again" / f"job-{again}.out").read_text()
    assert job_state(slurm, again) in ("COMPLETED", "GONE"), output[-3000:]
    finished = read_metrics(run_dir)
    assert finished["status"] == "completed"
    assert (finished["epochs"], finished["global_steps"]) == (epochs, epochs * 11)
