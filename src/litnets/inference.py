"""Use a trained model: test it again, predict with it, export it.

Everything is rebuilt from the run config saved inside the checkpoint, so a checkpoint (or
its run dir) is all a user has to name. Each function returns the summary it writes to
``metrics.json`` in its own run dir.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from omegaconf import DictConfig

from litnets import checkpoints
from litnets.build import build_datamodule, build_pieces, check_accelerator
from litnets.data.base import InMemoryDataModule
from litnets.inputs import load_inputs
from litnets.models import saved
from litnets.models.base import Architecture
from litnets.quiet import quiet_lightning
from litnets.record import environment, scalars, write_json
from litnets.signatures import PositiveInt, check_options, plain
from litnets.tasks import Task


@dataclass
class Restored:
    """A trained run rebuilt from its checkpoint alone."""

    config: DictConfig
    datamodule: InMemoryDataModule
    model: Architecture
    task: Task
    checkpoint_path: str


def restore(ckpt_path: str, data_dir: str | None = None) -> Restored:
    """Rebuild data, model and task from the run config saved in the checkpoint."""
    checkpoint = checkpoints.load(ckpt_path)
    cfg = checkpoints.run_config(checkpoint)
    if data_dir is not None and "data_dir" in cfg.data:
        cfg.data.data_dir = str(data_dir)
    datamodule = build_datamodule(cfg)
    saved = checkpoint.get(type(datamodule).__qualname__)  # what Lightning keeps of it
    if saved:  # fitted preprocessing: applied as trained, without the training file
        datamodule.load_state_dict(saved)
    pieces = build_pieces(cfg, datamodule)
    checkpoints.check_fits(pieces.task, checkpoint["state_dict"], checkpoint["path"])
    pieces.task.load_state_dict(checkpoint["state_dict"])
    pieces.task.eval()
    return Restored(cfg, pieces.datamodule, pieces.model, pieces.task, checkpoint["path"])


def inference_trainer(cfg: DictConfig) -> L.Trainer:
    check_accelerator(cfg.accelerator, "accelerator")
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
    )


def _summary(
    cfg: DictConfig, restored: Restored, started: float, command: str, **facts: Any
) -> dict[str, Any]:
    """The record of an inference run, written to its ``metrics.json``."""
    summary = {
        "status": "completed",
        "checkpoint": restored.checkpoint_path,
        **facts,
        "wall_time_s": round(time.perf_counter() - started, 3),
        "run_dir": str(cfg.paths.output_dir),
        "environment": environment(command, precision="32-true"),
    }
    write_json(Path(cfg.paths.output_dir) / "metrics.json", summary)
    return summary


def evaluate(cfg: DictConfig, *, command: str = "litnets.inference.evaluate") -> dict[str, Any]:
    """Test a checkpoint on its run's test set."""
    started = time.perf_counter()
    check_options(cfg, CheckpointOptions)
    with quiet_lightning():
        restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
        restored.datamodule.check_available()
        trainer = inference_trainer(cfg)
        trainer.test(restored.task, datamodule=restored.datamodule, verbose=False)
    test = scalars(trainer.callback_metrics, "test/")
    return _summary(cfg, restored, started, command, test=test)


@dataclass(frozen=True)
class CheckpointOptions:
    """``conf/checkpoint.yaml``'s keys, shared by eval, predict and export, checked before
    anything is loaded (``accelerator=tpu`` was torch_xla's traceback)."""

    data_dir: str | None
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"]
    seed: int


@dataclass(frozen=True)
class PredictOptions(CheckpointOptions):
    """``conf/predict.yaml``'s own keys."""

    top_k: PositiveInt
    num_samples: PositiveInt
    unknown_categories: Literal["error", "zeros"] | None


@dataclass(frozen=True)
class ExportOptions(CheckpointOptions):
    """``conf/export.yaml``'s own keys: a misspelt format was skipped without a word."""

    formats: list[Literal["state_dict", "torch_export"]]


def predict(cfg: DictConfig, *, command: str = "litnets.inference.predict") -> dict[str, Any]:
    """Predict on images, CSV rows or test samples; write ``predictions.csv``."""
    started = time.perf_counter()
    check_options(cfg, PredictOptions)
    with quiet_lightning():
        restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
        if cfg.get("unknown_categories") and hasattr(restored.datamodule, "unknown_categories"):
            restored.datamodule.unknown_categories = cfg.unknown_categories
        inputs, names, targets = load_inputs(str(cfg.input), restored.datamodule, cfg.num_samples)
        with torch.no_grad():
            outputs = restored.task(inputs)  # the task's outputs: in the target's own units
    if restored.task.kind == "classification":
        labels = restored.datamodule.class_names or [str(i) for i in range(outputs.shape[1])]
        rows = _class_rows(outputs, names, targets, labels, cfg.top_k)
    else:
        rows = _value_rows(outputs, names, targets)
    path = Path(cfg.paths.output_dir) / "predictions.csv"
    write_csv(path, rows)
    facts: dict[str, Any] = {"input": str(cfg.input), "predictions_csv": str(path)}
    if targets is not None and restored.task.kind == "classification":
        facts["accuracy"] = sum(row["prediction"] == row["true"] for row in rows) / len(rows)
    return _summary(cfg, restored, started, command, **facts, predictions=rows)


def _class_rows(
    outputs: torch.Tensor,
    names: list[str],
    targets: torch.Tensor | None,
    labels: list[str],
    top_k: int,
) -> list[dict[str, Any]]:
    probabilities = outputs.softmax(dim=1)
    top = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    rows = []
    for i, name in enumerate(names):
        ranked = [
            (labels[j], p)
            for p, j in zip(top.values[i].tolist(), top.indices[i].tolist(), strict=True)
        ]
        row = {"input": name, "prediction": ranked[0][0], "probability": round(ranked[0][1], 6)}
        row["top_k"] = "; ".join(f"{label} {p:.4f}" for label, p in ranked)
        if targets is not None:
            row["true"] = labels[int(targets[i])]
        rows.append(row)
    return rows


def _value_rows(
    outputs: torch.Tensor, names: list[str], targets: torch.Tensor | None
) -> list[dict[str, Any]]:
    rows = []
    for i, name in enumerate(names):
        values = [round(v, 6) for v in outputs[i].tolist()]
        row: dict[str, Any] = {
            "input": name,
            "prediction": values[0] if len(values) == 1 else values,
        }
        if targets is not None:
            row["true"] = [round(v, 6) for v in targets[i].flatten().tolist()]
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def export(cfg: DictConfig, *, command: str = "litnets.inference.export") -> dict[str, Any]:
    """Write the model as ``model.pt`` + ``model.json`` (and ``model.pt2`` via torch.export)."""
    started = time.perf_counter()
    check_options(cfg, ExportOptions)
    with quiet_lightning():
        restored = restore(cfg.ckpt_path, cfg.get("data_dir"))
    model, datamodule = restored.model, restored.datamodule
    out = Path(cfg.paths.output_dir)
    kwargs = {k: v for k, v in plain(restored.config.model).items() if k != "_target_"}
    kwargs |= {"input_shape": list(datamodule.input_shape), "num_outputs": datamodule.num_outputs}
    # A table's fitted preprocessing (columns, scaling, categories) goes into model.json:
    # what a user needs to turn raw rows into the model's inputs by hand.
    saved.save(
        model,
        kwargs,
        out,
        class_names=datamodule.class_names,
        source=restored.checkpoint_path,
        **datamodule.state_dict(),
    )
    files = {"weights": str(out / saved.WEIGHTS), "spec": str(out / saved.SPEC)}
    if "torch_export" in cfg.formats:
        example = torch.zeros(2, *datamodule.input_shape)
        batch = torch.export.Dim("batch", min=1)
        program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, out / "model.pt2")
        files["torch_export"] = str(out / "model.pt2")
    return _summary(cfg, restored, started, command, files=files)
