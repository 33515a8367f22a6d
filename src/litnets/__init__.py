"""litnets: the classic deep-learning tutorials as one Lightning + Hydra project.

Packages, one job each:
    data/       LightningDataModules: datasets decoded once into in-memory tensors
    models/     plain ``nn.Module`` architectures (no Lightning inside)
    tasks/      LightningModules: what to optimise and what to measure
    callbacks/  pictures and run bookkeeping for TensorBoard
    run.py      train / evaluate / predict / export, called by the thin scripts
"""

__version__ = "0.1.0"
