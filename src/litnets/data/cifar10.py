"""CIFAR-10 (seed 001's CNN) in torchvision's on-disk format.

Reads ``<data_dir>/cifar-10-batches-py/`` or, if only the archive is there, the members of
``<data_dir>/cifar-10-python.tar.gz`` straight from the archive (nothing is extracted).
The batches are pickles, so they are read with an unpickler that only admits the few
numpy types the format uses: a stray or malicious file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from litnets.data.base import InMemoryDataModule, Split, scale_pixels
from litnets.errors import DataError

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def load_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode one pickled batch into (N×3×32×32 uint8 images, N int64 labels)."""
    try:
        entry = _SafeUnpickler(io.BytesIO(raw), encoding="latin1").load()
        entry = {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}
        data = np.asarray(entry["data"], dtype=np.uint8)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32)
    except Exception as err:
        raise DataError(f"CIFAR-10 batch {name} is corrupt or not in CIFAR format: {err}") from err
    if len(images) != len(labels):
        raise DataError(f"CIFAR-10 batch {name}: {len(images)} images but {len(labels)} labels")
    return images, labels


class CIFAR10DataModule(InMemoryDataModule):
    """32×32 colour images, 10 classes; kept as bytes, each batch scaled to [0, 1]
    (``ToTensor``) and normalised as it is gathered (``encodes_batches``)."""

    encodes_batches: ClassVar[bool] = True

    def __init__(
        self,
        data_dir: str = "data",
        mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
        std: tuple[float, float, float] = (1.0, 1.0, 1.0),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.data_dir = Path(data_dir).expanduser()
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (3, 32, 32)

    @property
    def num_outputs(self) -> int:
        return len(CLASSES)

    @property
    def class_names(self) -> list[str]:
        return CLASSES

    def encode(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 images (N, 3, 32, 32) → ToTensor scaling, then per-channel Normalize."""
        if self.mean.device != raw.device:  # moved once, to where the batches are gathered
            self.mean, self.std = self.mean.to(raw.device), self.std.to(raw.device)
        return scale_pixels(raw, self.mean, self.std)

    def _source(self) -> Path:
        """The extracted folder if complete, else the archive; a clear error if neither."""
        folder, archive = self.data_dir / FOLDER, self.data_dir / ARCHIVE
        names = TRAIN_BATCHES + TEST_BATCHES
        if all((folder / name).is_file() for name in names):
            return folder
        if archive.is_file():
            return archive
        raise DataError(
            f"CIFAR-10 not found. Expected the folder {folder}/ with "
            f"{', '.join(names)}, or the archive {archive} (torchvision's layout). "
            "Point data.data_dir (or LITNETS_DATA_DIR) at the folder that holds them."
        )

    def check_available(self) -> None:
        self._source()

    def _read_members(self) -> dict[str, bytes]:
        source = self._source()
        names = TRAIN_BATCHES + TEST_BATCHES
        if source.is_dir():
            return {name: (source / name).read_bytes() for name in names}
        try:
            with tarfile.open(source, "r:gz") as tar:
                members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
                missing = [name for name in names if name not in members]
                if missing:
                    raise DataError(f"{source} lacks the batches {', '.join(missing)}")
                return {name: tar.extractfile(members[name]).read() for name in names}
        except (tarfile.TarError, OSError, EOFError) as err:
            raise DataError(f"{source} is truncated or corrupt: {err}") from err

    def load(self) -> dict[str, Split]:
        raw = self._read_members()
        splits = {}
        for split, names in (("train", TRAIN_BATCHES), ("test", TEST_BATCHES)):
            parts = [load_batch(raw[name], name) for name in names]
            images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
            labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
            splits[split] = (images, labels)
        return splits
