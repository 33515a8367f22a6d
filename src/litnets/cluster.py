"""What a run does about the SLURM job it runs in: requeue it, and know it was requeued."""

from __future__ import annotations

import os
import shutil
import subprocess


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
