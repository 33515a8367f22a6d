"""litnets: the classic deep-learning tutorials as one Lightning + Hydra project.

    from litnets import train, evaluate, predict, export
    summary = train(["experiment=mnist_mlp", "trainer.max_epochs=3"])

Each takes the overrides ``litnets <command>`` takes and returns the run's summary (its
``metrics.json``). Importing litnets is cheap and changes no global state (warning
filters, logging, signal handlers, OmegaConf resolvers): runs set up what they need.

Packages and modules, one job each:
    data/        LightningDataModules: datasets decoded once into in-memory tensors
    models/      plain ``nn.Module`` architectures (no Lightning inside)
    tasks/       LightningModules: what to optimise and what to measure
    callbacks/   checkpoints, pictures, progress and run bookkeeping
    commands/    one Hydra main per ``litnets`` command; cli.py dispatches to them
    api.py       the Python API above
    build.py     a run's pieces from its config; training.py fits, tests, records
    inference.py evaluate / predict / export a trained model
    overrides.py the command line, parsed by Hydra and checked before a run
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["evaluate", "export", "predict", "train"]

if TYPE_CHECKING:
    from litnets.api import evaluate, export, predict, train


def __getattr__(name: str) -> Any:
    """The API functions, imported on first use: ``import litnets`` stays light."""
    if name in __all__:
        from litnets import api

        return getattr(api, name)
    raise AttributeError(f"module 'litnets' has no attribute {name!r}")
