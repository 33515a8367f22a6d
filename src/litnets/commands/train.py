"""``litnets train [group=option ...] [key=value ...]``: train and test a model."""

from __future__ import annotations

import math
import sys
import time

from omegaconf import DictConfig

from litnets.commands.base import hydra_command, process_started_at, run, task_overrides
from litnets.overrides import CommandLine
from litnets.rundirs import resume_in_place


@hydra_command("train")
def main(cfg: DictConfig) -> float | None:
    from litnets.config import in_sweep, launched_rank_is_zero
    from litnets.record import command_line
    from litnets.training import Invocation, format_summary, train

    # A sweep job's start-up counts from the job's own start, not from the sweep's.
    started = time.perf_counter() if in_sweep() else process_started_at()
    invocation = Invocation(command=command_line("train"), started_at=started, can_relaunch=True)
    overrides = task_overrides()
    summary = train(cfg, overrides=overrides, invocation=invocation)
    if launched_rank_is_zero():
        print(format_summary(summary, cfg.paths.log_dir))
    if status := exit_status(summary):
        sys.exit(status)
    objective = summary.get("objective")
    return None if objective is None or math.isnan(objective) else objective  # None: failed


def exit_status(summary: dict) -> int:
    """0 for a finished run; a stopped one exits as the signal's shell convention says."""
    if summary.get("status") != "interrupted":
        return 0
    return {"SIGINT": 130, "SIGTERM": 143, "SIGUSR1": 138}.get(str(summary.get("stopped_by")), 1)


def _continue_in_place(line: CommandLine) -> list[str]:
    return resume_in_place(line, time.strftime("%Y-%m-%d_%H-%M-%S"))


if __name__ == "__main__":
    run(main, "train", extra=_continue_in_place)
