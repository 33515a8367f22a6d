"""DDP ranks that litnets starts itself, as torchrun would: for sweep jobs.

Lightning starts the extra ranks of ``trainer=ddp``/``ddp_cpu`` by re-running the command
line once per process. A job of a ``-m`` sweep cannot be re-run that way (each rank would
run the whole sweep), so its ranks are spawned here instead. Each process gets torchrun's
environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``), so
Lightning sees ranks launched from outside, and runs the ordinary ``litnets.training.train``
on the job's composed config, resolved here since the ranks have no Hydra of their own.
All ranks write to the job's run dir; rank 0's ``metrics.json`` is the job's result.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from litnets.errors import LitnetsError

if TYPE_CHECKING:
    from litnets.training import Invocation


def train_in_spawned_ranks(
    cfg: DictConfig, world_size: int, invocation: Invocation
) -> dict[str, Any]:
    """Train ``cfg`` in ``world_size`` fresh processes on this machine; rank 0's summary."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    port = _free_port()
    context = multiprocessing.get_context("spawn")  # no forked copy of this process's state
    ranks = [
        context.Process(
            target=_rank,
            args=(rank, world_size, port, resolved, replace(invocation, can_relaunch=False)),
            name=f"litnets-rank{rank}",
        )
        for rank in range(world_size)
    ]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join()
    summary_path = Path(cfg.paths.output_dir) / "metrics.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    failed = [p.name for p in ranks if p.exitcode != 0]
    if failed or summary.get("status") not in ("completed", "interrupted"):
        reason = summary.get("error") or f"{', '.join(failed) or 'rank 0'} exited with an error"
        raise LitnetsError(f"the {world_size}-process DDP job failed: {reason}")
    return summary


def _rank(
    rank: int, world_size: int, port: int, cfg: dict[str, Any], invocation: Invocation
) -> None:
    from litnets.training import train

    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), NODE_RANK="0", WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    try:
        train(OmegaConf.create(cfg), invocation=invocation)
    except LitnetsError as error:
        print(f"litnets: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
