"""Datasets as LightningDataModules, all on the in-memory base in ``base``."""

from litnets.data.base import (
    Batches,
    EpochIndexSampler,
    InMemoryDataModule,
    LoaderBatches,
    TensorBatches,
)

__all__ = [
    "Batches",
    "EpochIndexSampler",
    "InMemoryDataModule",
    "LoaderBatches",
    "TensorBatches",
]
