"""``tune=lr_find``: Lightning's learning-rate range test, its suggestion as a ready override.

Lightning's ``Tuner.lr_find`` trains for ``tune.num_training`` steps while raising the
learning rate from ``tune.min_lr`` to ``tune.max_lr``, records the loss, and suggests the
rate where the loss falls fastest. It runs through litnets' own optimizer step (the lean
step steps the finder's schedule as it steps any), then restores the initial weights.
The loss-vs-lr plot goes to ``<run dir>/lr_find.png`` and to TensorBoard (``tune/lr_find``);
with ``tune.train=true`` the run then trains as usual at the suggested rate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

from litnets.build import build_loggers, build_pieces, build_trainer
from litnets.errors import ConfigError
from litnets.record import RunRecord, environment, write_json
from litnets.signatures import PositiveFloat, PositiveInt, check_arguments, plain


@dataclass(frozen=True)
class RangeTest:
    """``conf/tune/lr_find.yaml``, typed (the node builds nothing, so nothing else checks it:
    ``tune.num_training=0`` and ``tune.mode=abc`` failed inside Lightning's tuner)."""

    min_lr: PositiveFloat
    max_lr: PositiveFloat
    num_training: PositiveInt
    mode: Literal["exponential", "linear"]
    early_stop_threshold: PositiveFloat | None
    train: bool


def find_learning_rate(cfg: DictConfig, command: str) -> dict[str, Any]:
    """Run the range test for ``cfg``'s experiment; return (and record) what it found."""
    from lightning.pytorch.tuner import Tuner

    tune = cfg.tune
    check_arguments(RangeTest, plain(tune), "tune")
    if tune.min_lr >= tune.max_lr:
        raise ConfigError(f"tune.min_lr={tune.min_lr} must be below tune.max_lr={tune.max_lr}")
    run_dir = Path(cfg.paths.output_dir)
    record = RunRecord(run_dir, task="lr_find", seed=cfg.seed)
    # A short probe whose learning rate Lightning's finder sets step by step: eager steps.
    finder_cfg = OmegaConf.merge(
        cfg, {"trainer": {"max_epochs": int(tune.num_training)}, "task": {"cuda_graph": False}}
    )
    pieces = build_pieces(finder_cfg)
    pieces.datamodule.check_available()
    loggers = build_loggers(cfg)
    trainer = build_trainer(finder_cfg, [], loggers)
    found = Tuner(trainer).lr_find(
        pieces.task,
        datamodule=pieces.datamodule,
        min_lr=float(tune.min_lr),
        max_lr=float(tune.max_lr),
        num_training=int(tune.num_training),
        mode=str(tune.mode),
        early_stop_threshold=tune.early_stop_threshold,
        update_attr=False,  # the rate is a config value: printed, and set by tune.train
    )
    suggestion = found.suggestion() if found is not None else None
    if suggestion is None:
        raise ConfigError(
            "the learning-rate range test found too few points for a suggestion: raise "
            "tune.num_training or widen tune.min_lr/tune.max_lr"
        )
    figure = found.plot(suggest=True)
    figure.axes[0].set_title(f"learning-rate range test: suggested {suggestion:.3g}")
    plot = run_dir / "lr_find.png"
    figure.savefig(plot, dpi=100)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure("tune/lr_find", figure, global_step=0)
    record.update(
        status="completed",
        lr_find={
            "suggestion": suggestion,
            "override": f"optimizer.lr={suggestion:.3g}",
            "lrs": [float(lr) for lr in found.results["lr"]],
            "losses": [float(loss) for loss in found.results["loss"]],
            "plot": str(plot),
        },
        environment=environment(command, device=trainer.strategy.root_device),
    )
    print(
        f"litnets: suggested learning rate: optimizer.lr={suggestion:.3g}   (plot: {plot})",
        file=sys.stderr,
    )
    return record.finish(epochs=0, global_steps=0, write=trainer.is_global_zero)


def tune_then_train(
    cfg: DictConfig, train: Callable[[DictConfig], dict[str, Any]], command: str
) -> dict[str, Any]:
    """The range test; then, with ``tune.train``, a normal run at the suggested rate."""
    found = find_learning_rate(cfg, command)
    if not cfg.tune.train:
        return found
    tuned = OmegaConf.merge(cfg, {"optimizer": {"lr": float(found["lr_find"]["suggestion"])}})
    tuned.tune = None
    summary = {**train(tuned), "lr_find": found["lr_find"]}
    write_json(Path(cfg.paths.output_dir) / "metrics.json", summary)  # one record for both
    return summary
