"""Export a trained model: ``python scripts/export.py ckpt_path=<run dir or .ckpt>``."""

import sys

import hydra
from omegaconf import DictConfig

from litnets.cli import check_command_line, report_errors, sweep_exit_status
from litnets.config import CONFIG_DIR


@hydra.main(config_path=str(CONFIG_DIR), config_name="export", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    from litnets.run import export

    for kind, path in export(cfg).items():
        print(f"  {kind:<13}{path}")
    print("litnets: load with `litnets.models.saved.load(dir)` (torch + litnets.models only)")


if __name__ == "__main__":
    check_command_line(sys.argv[1:], "export")
    main()
    sys.exit(sweep_exit_status())
