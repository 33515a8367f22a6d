"""Predict with a trained model: ``python scripts/predict.py ckpt_path=... input=...``.

``input`` is ``test`` (samples of the test set), an image file or folder (image models),
or a CSV of feature rows (tabular and regression models).
"""

import sys

import hydra
from omegaconf import DictConfig

from litnets.cli import check_command_line, report_errors, sweep_exit_status
from litnets.config import CONFIG_DIR


@hydra.main(config_path=str(CONFIG_DIR), config_name="predict", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    from litnets.run import predict

    rows = predict(cfg)
    for row in rows:
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    print(f"litnets: {len(rows)} predictions in {cfg.paths.output_dir}/predictions.csv")


if __name__ == "__main__":
    check_command_line(sys.argv[1:], "predict")
    main()
    sys.exit(sweep_exit_status())
