"""Train and test a model: ``python scripts/train.py [group=option ...] [key=value ...]``.

Examples::

    python scripts/train.py                                  # Iris MLP, the default
    python scripts/train.py model=mlp data=mnist             # seed 002's MNIST MLP
    python scripts/train.py experiment=fashion_softmax trainer.max_epochs=3
    python scripts/train.py --help                           # every group and option
"""

import time

PROCESS_STARTED_AT = time.perf_counter()  # before the heavy imports: start-up is measured

import sys  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from litnets.cli import (  # noqa: E402
    check_command_line,
    exit_status,
    report_errors,
    resume_in_place,
    sweep_exit_status,
)
from litnets.config import CONFIG_DIR  # noqa: E402


@hydra.main(config_path=str(CONFIG_DIR), config_name="train", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> float | None:
    from litnets.config import launched_rank_is_zero
    from litnets.run import format_summary, train

    overrides = list(HydraConfig.get().overrides.task)
    summary = train(cfg, process_started_at=PROCESS_STARTED_AT, overrides=overrides)
    if launched_rank_is_zero():
        print(format_summary(summary, cfg.paths.log_dir))
    if status := exit_status(summary):
        sys.exit(status)
    return summary.get("objective")


if __name__ == "__main__":
    sys.argv[1:] = resume_in_place(sys.argv[1:])  # Hydra reads sys.argv
    check_command_line(sys.argv[1:], "train")
    main()
    sys.exit(sweep_exit_status())
