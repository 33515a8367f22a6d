"""Datasets as LightningDataModules, all on the in-memory base in ``base``."""

from litnets.data.base import InMemoryDataModule
from litnets.data.batches import Batches, EpochIndexSampler, LoaderBatches, TensorBatches

__all__ = [
    "Batches",
    "EpochIndexSampler",
    "InMemoryDataModule",
    "LoaderBatches",
    "TensorBatches",
]
