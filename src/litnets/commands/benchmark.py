"""``litnets benchmark [experiment=...] [epochs=3] [trainer=gpu]``: litnets against the
tutorial's loop and the best plain PyTorch loop, side by side in one process.

Prints a table and writes ``benchmark.json`` to the run dir.
"""

from __future__ import annotations

import sys
from pathlib import Path

from omegaconf import DictConfig

from litnets.commands.base import hydra_command, run, task_overrides


@hydra_command("benchmark")
def main(cfg: DictConfig) -> None:
    from litnets.benchmark import benchmark, format_report
    from litnets.record import write_json

    report = benchmark(cfg, task_overrides())
    print(format_report(report))
    write_json(Path(cfg.paths.output_dir) / "benchmark.json", report)
    print(f"litnets: wrote {cfg.paths.output_dir}/benchmark.json", file=sys.stderr)


if __name__ == "__main__":
    run(main, "benchmark")
