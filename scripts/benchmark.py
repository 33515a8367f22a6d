"""Time litnets against the tutorial's loop and the best plain PyTorch loop.

``python scripts/benchmark.py`` (seed 002's MNIST MLP, 3 epochs); ``experiment=``,
``epochs=``, ``trainer=gpu`` and every train override work as in ``scripts/train.py``.
Prints a table and writes ``benchmark.json`` to the run dir.
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from litnets.cli import check_command_line, report_errors, sweep_exit_status
from litnets.config import CONFIG_DIR


@hydra.main(config_path=str(CONFIG_DIR), config_name="benchmark", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    from pathlib import Path

    from litnets.benchmark import benchmark, format_report
    from litnets.run import write_json

    report = benchmark(cfg, list(HydraConfig.get().overrides.task))
    print(format_report(report))
    write_json(Path(cfg.paths.output_dir) / "benchmark.json", report)
    print(f"litnets: wrote {cfg.paths.output_dir}/benchmark.json", file=sys.stderr)


if __name__ == "__main__":
    check_command_line(sys.argv[1:], "benchmark")
    main()
    sys.exit(sweep_exit_status())
