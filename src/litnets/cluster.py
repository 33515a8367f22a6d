"""What a run does about the SLURM job it runs in: requeue it, and find its run when requeued.

A pre-empted run (SIGUSR1, see ``litnets.callbacks.last_checkpoint``) saves ``last.ckpt``,
records ``status: interrupted``, ``stopped_by: SIGUSR1`` and its ``slurm_job`` in
``metrics.json``, and requeues the job. SLURM starts the same batch script again with the same
job id and ``SLURM_RESTART_COUNT`` raised; the run it left is found by that record and
continued in place, exactly as ``resume=<run dir>`` would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path


def job_id() -> str | None:
    """This job's id as ``scontrol`` names it (``<array job>_<task>`` for array tasks)."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID")


def can_requeue() -> bool:
    """Inside a SLURM batch job, with ``scontrol`` at hand (not an interactive ``srun``)."""
    interactive = os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")
    return job_id() is not None and not interactive and shutil.which("scontrol") is not None


def requeue() -> str | None:
    """Put this job back in the queue; its next start resumes from ``last.ckpt``.

    SLURM ends the running job when it is requeued, so this comes after the save. Returns the
    job id, or ``None`` outside a requeueable job or when ``scontrol`` refused.
    """
    if not can_requeue():
        return None
    job = job_id()
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    return job if result.returncode == 0 else None


def restart_count() -> int:
    """How many times SLURM has started this job before (0 on its first start)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def requeued_run(log_dir: Path) -> Path | None:
    """The run this job left when it was pre-empted, if this is a requeued start of it."""
    job = job_id()
    if job is None or restart_count() == 0 or not log_dir.is_dir():
        return None
    found = []
    for summary in log_dir.rglob("metrics.json"):
        try:
            record = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        if (
            record.get("slurm_job") == job
            and record.get("stopped_by") == "SIGUSR1"
            and (record.get("status") == "interrupted")
        ):
            found.append(summary.parent)
    return max(found, key=lambda run: (run / "metrics.json").stat().st_mtime, default=None)
