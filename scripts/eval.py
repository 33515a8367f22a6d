"""Test a trained model again: ``python scripts/eval.py ckpt_path=<run dir or .ckpt>``."""

import sys

import hydra
from omegaconf import DictConfig

from litnets.cli import check_command_line, report_errors, sweep_exit_status
from litnets.config import CONFIG_DIR


@hydra.main(config_path=str(CONFIG_DIR), config_name="eval", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    from litnets.run import evaluate

    summary = evaluate(cfg)
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in summary["test"].items())
    print(f"litnets: evaluated {summary['checkpoint']}\n  test         {metrics}")
    print(f"  metrics.json {summary['run_dir']}/metrics.json")


if __name__ == "__main__":
    check_command_line(sys.argv[1:], "eval")
    main()
    sys.exit(sweep_exit_status())
