"""Datasets as LightningDataModules, all on the in-memory base in ``base``."""

from litnets.data.base import EpochIndexSampler, InMemoryDataModule, TensorBatches

__all__ = ["EpochIndexSampler", "InMemoryDataModule", "TensorBatches"]
