"""A run's record: what ``metrics.json`` holds, and the environment the run ran in.

One ``RunRecord`` per run collects the summary as the run goes (what was trained, how
training ended, test metrics, timings) and writes it atomically, from rank zero only.
The same dict is what ``litnets.train`` returns.
"""

from __future__ import annotations

import json
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

PACKAGES = ("litnets", "torch", "lightning", "hydra-core", "torchmetrics", "torchvision")


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` so that a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def scalars(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The epoch-level metrics under ``prefix`` (``val/``, ``test/``) as plain floats."""
    return {
        key: float(value)
        for key, value in sorted(metrics.items())
        if key.startswith(prefix) and not key.endswith("_step")
    }


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _git(source: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def git_state(source: Path) -> dict[str, Any] | None:
    """The commit of the checkout ``source`` lies in, and whether it had changes; else None.

    One ``git status`` says both (its ``# branch.oid`` header, then a line per change), in
    one process instead of two: ≈ 2.5 ms of start-up."""
    status = _git(source, "status", "--porcelain=v2", "--branch")
    if status is None:
        return None
    lines = status.splitlines()
    commit = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), None)
    if commit is None or commit == "(initial)":  # not a checkout, or no commit yet
        return None
    return {"commit": commit, "dirty": any(not line.startswith("# ") for line in lines)}


def environment(
    command: str, *, device: torch.device | None = None, precision: str | None = None
) -> dict[str, Any]:
    """Versions, hardware, precision, code and command: what it takes to rerun a result."""
    env: dict[str, Any] = {
        "command": command,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {name: _version(name) for name in PACKAGES},
        "precision": precision,
    }
    if device is not None and device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["device"] = torch.cuda.get_device_name(device)
    else:
        env["device"] = str(device or "cpu")
    source = Path(__file__).resolve().parent
    env["git"] = git_state(source) if (source.parents[1] / "pyproject.toml").is_file() else None
    return env


def command_line(command: str) -> str:
    """``litnets <command> <this process's arguments>``, as a user would retype it."""
    return shlex.join(["litnets", command, *sys.argv[1:]])


def discard_if_unused(run_dir: Path, since: float) -> bool:
    """Remove a run dir this process made and left with nothing but Hydra's config and logs.

    A run stopped by a user error before it wrote anything (a bad data file, a missing
    column) then leaves nothing behind. ``since`` is the process's start (``time.time()``):
    a dir or file older than that, or anything else in it, keeps the dir.
    """
    import shutil

    if not run_dir.is_dir() or run_dir.stat().st_ctime < since:
        return False
    entries = list(run_dir.iterdir())
    if not all(e.name == ".hydra" or (e.is_file() and e.suffix == ".log") for e in entries):
        return False
    if any(f.stat().st_mtime < since for f in run_dir.rglob("*")):
        return False
    shutil.rmtree(run_dir)
    return True


class RunRecord:
    """The summary of one run, written to ``<run dir>/metrics.json``."""

    def __init__(self, run_dir: Path, **facts: Any) -> None:
        self.run_dir = run_dir
        self.started = time.perf_counter()
        self.summary: dict[str, Any] = {"status": "running", **facts}

    def __getitem__(self, key: str) -> Any:
        return self.summary[key]

    def update(self, **facts: Any) -> None:
        self.summary.update(facts)

    def finish(self, *, epochs: int, global_steps: int, write: bool = True) -> dict[str, Any]:
        """Add the closing facts and write ``metrics.json`` (``write``: on rank zero only)."""
        self.summary.update(
            epochs=epochs,
            global_steps=global_steps,
            wall_time_s=round(time.perf_counter() - self.started, 3),
            run_dir=str(self.run_dir),
        )
        if write:
            write_json(self.run_dir / "metrics.json", self.summary)
        return self.summary
