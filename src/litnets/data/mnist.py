"""MNIST (seeds 002, 004) and Fashion-MNIST (D2L chapter 3) from torchvision's raw files.

The IDX files are read directly (gzipped or extracted), so a read-only data folder works
and nothing is written next to the user's files; a gzipped file's decoded copy is kept in
``cache_dir`` (``litnets.data.cache``). The splits keep the bytes (4× less memory than
floats); pixels are scaled and normalised as batches are gathered (``encodes_batches``).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from litnets.data.base import InMemoryDataModule, Split, scale_pixels
from litnets.data.cache import decoded
from litnets.errors import DataError

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file, checking that its size matches its own header."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as file:
                raw = file.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err} (the file looks corrupt: replace it)") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad header): replace it")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path} is truncated or corrupt: {len(raw)} bytes, header promises {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


class MNISTDataModule(InMemoryDataModule):
    """Handwritten digits, 1×28×28, 10 classes; torchvision's ``MNIST/raw`` layout."""

    folder: ClassVar[str] = "MNIST"
    classes: ClassVar[list[str]] = [str(digit) for digit in range(10)]
    encodes_batches: ClassVar[bool] = True

    def __init__(
        self,
        data_dir: str = "data",
        mean: float = 0.5,
        std: float = 0.5,
        cache_dir: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir).expanduser()
        self.mean = mean
        self.std = std
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1, 28, 28)

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return self.classes

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.folder / "raw"

    def locate(self, name: str) -> Path:
        """The extracted file if present, else the ``.gz``; a clear error if neither."""
        for candidate in (self.raw_dir / name, self.raw_dir / f"{name}.gz"):
            if candidate.is_file():
                return candidate
        expected = "\n  ".join(
            str(self.raw_dir / f"{file}.gz") for pair in FILES.values() for file in pair
        )
        raise DataError(
            f"{self.folder} files not found in {self.raw_dir}. Expected (gzipped or extracted):"
            f"\n  {expected}\nPoint data.data_dir (or the LITNETS_DATA_DIR environment variable)"
            f" at the folder that holds {self.folder}/raw/."
        )

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 1, 28, 28) → ToTensor scaling, then Normalize(mean, std)."""
        return scale_pixels(raw, self.mean, self.std)

    def check_available(self) -> None:
        for pair in FILES.values():
            for name in pair:
                self.locate(name)

    def read(self, name: str) -> np.ndarray:
        """One IDX file's array (writable), decoded once and then read from the cache."""
        path = self.locate(name)
        if self.cache_dir is not None and path.suffix == ".gz":
            array = decoded(self.cache_dir / "idx", path, read_idx)
            return array if array.flags.writeable else array.copy()
        return read_idx(path).copy()

    def load(self) -> dict[str, Split]:
        """The raw uint8 images, kept as they are: batches are encoded as they are gathered."""
        splits = {}
        for split, (images_file, labels_file) in FILES.items():
            images = torch.from_numpy(self.read(images_file))
            labels = torch.from_numpy(self.read(labels_file).astype(np.int64))
            if images.ndim != 3 or len(images) != len(labels):
                raise DataError(f"{self.raw_dir}: {split} images and labels do not match")
            splits[split] = (images.unsqueeze(1), labels)
        return splits


class FashionMNISTDataModule(MNISTDataModule):
    """Zalando's clothing images, same format as MNIST; D2L uses batch 256 and ToTensor only."""

    folder: ClassVar[str] = "FashionMNIST"
    classes: ClassVar[list[str]] = [
        "t-shirt", "trouser", "pullover", "dress", "coat",
        "sandal", "shirt", "sneaker", "bag", "ankle boot",
    ]  # fmt: skip

    def __init__(self, mean: float = 0.0, std: float = 1.0, **kwargs) -> None:
        super().__init__(mean=mean, std=std, **kwargs)
