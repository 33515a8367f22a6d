"""A trained model as two plain files, loadable with torch and ``litnets.models`` alone.

``model.pt`` is the ``state_dict`` (seed 004's ``torch.save(model.state_dict(), ...)``) and
``model.json`` says how to rebuild the architecture, so no Lightning, Hydra or run config
is needed to use it::

    from litnets.models.saved import load
    model = load("exported/")          # eval mode, ready for inference
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

WEIGHTS = "model.pt"
SPEC = "model.json"


def save(model: nn.Module, kwargs: dict[str, Any], directory: str | Path, **extra: Any) -> Path:
    """Write the weights and the constructor call (class path + arguments) of ``model``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / WEIGHTS)
    cls = type(model)
    spec = {"class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": kwargs, **extra}
    (directory / SPEC).write_text(json.dumps(spec, indent=2) + "\n")
    return directory


def load(directory: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the architecture from ``model.json`` and load ``model.pt`` (weights only)."""
    directory = Path(directory)
    spec = json.loads((directory / SPEC).read_text())
    module_name, _, class_name = spec["class"].rpartition(".")
    if not module_name.startswith("litnets.models."):
        raise ValueError(f"{spec['class']} is not a litnets model")
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = dict(spec["kwargs"])
    kwargs["input_shape"] = tuple(kwargs["input_shape"])
    model = cls(**kwargs)
    state = torch.load(directory / WEIGHTS, map_location=map_location, weights_only=True)
    model.load_state_dict(state)
    return model.eval()
