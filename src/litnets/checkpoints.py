"""Loading checkpoints safely, with one-line errors instead of state-dict dumps."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from litnets.errors import CheckpointError

LAST = Path("checkpoints") / "last.ckpt"
"""Where in a run dir ``last.ckpt`` lies: what ``resume=`` continues and a stop saves."""
BEST = Path("checkpoints") / "best.ckpt"


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run dir>/checkpoints/last.ckpt``, whether or not it exists yet (the one rule)."""
    return Path(run_dir).expanduser().absolute() / LAST


def find_last_checkpoint(run_dir: str | Path) -> Path:
    """The ``last.ckpt`` that ``resume=<run dir>`` continues from; it must exist."""
    last = last_checkpoint(Path(run_dir).expanduser().resolve())
    if not last.is_file():
        raise CheckpointError(f"cannot resume {last.parent.parent}: it has no {LAST}")
    return last


def resolve(path: str | Path) -> Path:
    """A checkpoint file, or a run dir (its ``best.ckpt``, else its ``last.ckpt``)."""
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / BEST, last_checkpoint(path)):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"no {BEST} or {LAST} in {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a litnets checkpoint with ``weights_only=True``: tensors and plain data only."""
    path = resolve(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refused a global: unpickling it could run code (os.system, ...)
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        name = found.group(1) if found else "an object"
        raise CheckpointError(
            f"{path} holds Python objects beyond tensors and plain data ({name}): refused, "
            "since loading them could run code; use a checkpoint litnets wrote"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint: {reason}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning checkpoint (no state_dict)")
    config = checkpoint.get("hyper_parameters", {}).get("config")
    if not config:
        raise CheckpointError(f"{path} was not written by litnets (no run config inside)")
    checkpoint["path"] = str(path)
    return checkpoint


def run_config(checkpoint: dict[str, Any]) -> DictConfig:
    """The composed config of the run that wrote the checkpoint."""
    return OmegaConf.create(checkpoint["hyper_parameters"]["config"])


def check_fits(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise one clear line when ``state_dict`` was saved from a different architecture."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or unexpected or reshaped:
        details = []
        if reshaped:
            details.append(f"{len(reshaped)} with other shapes (first: {reshaped[0]})")
        if missing:
            details.append(f"{len(missing)} missing (first: {missing[0]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected (first: {unexpected[0]})")
        raise CheckpointError(
            f"{source} holds weights for a different model or dataset than this config: "
            + "; ".join(details)
        )
