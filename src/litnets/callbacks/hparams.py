"""The HPARAMS tab: a run's key settings next to its final metrics, for comparing sweeps."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger


def _short(target: Any) -> str:
    return str(target).rsplit(".", 1)[-1] if target else "none"


def key_hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """The settings people compare runs by, flat and TensorBoard-friendly."""
    data, model = config.get("data", {}), config.get("model", {})
    optimizer, scheduler = config.get("optimizer", {}), config.get("scheduler") or {}
    trainer = config.get("trainer", {})
    return {
        "data": _short(data.get("_target_")),
        "model": _short(model.get("_target_")),
        "hidden_sizes": str(model.get("hidden_sizes", "-")),
        "optimizer": _short(optimizer.get("_target_")),
        "lr": float(optimizer.get("lr", 0.0)),
        "batch_size": int(data.get("batch_size", 0)),
        "max_epochs": int(trainer.get("max_epochs") or 0),
        "scheduler": _short(scheduler.get("_target_")),
        "precision": str(trainer.get("precision", "")),
        "seed": int(config.get("seed", 0)),
    }


class HParamsSummary(L.Callback):
    """After testing, write the hyperparameters with ``test/*`` and best ``val/*`` metrics."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        params = key_hyperparameters(pl_module.hparams.get("config", {}))
        metrics = {
            key: float(value)
            for key, value in trainer.callback_metrics.items()
            if key.startswith("test/") or key.endswith("_best")
        }
        checkpoint = trainer.checkpoint_callback
        if checkpoint is not None and checkpoint.best_model_score is not None:
            metrics[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(params, metrics)
            else:
                logger.log_hyperparams(params)
