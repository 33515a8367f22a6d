"""Reading user inputs for prediction: image files, CSV rows, or samples of the test set."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from litnets.data.base import InMemoryDataModule
from litnets.data.folder import IMAGE_SUFFIXES
from litnets.errors import ConfigError, DataError


def read_images(paths: list[Path], shape: tuple[int, ...]) -> Tensor:
    """Any-size image files → uint8 tensor (N, C, H, W) in the model's channels and size."""
    from litnets.data.folder import decode

    channels, height, width = shape
    if channels not in (1, 3):
        raise ConfigError(f"cannot turn image files into {channels}-channel inputs")
    arrays = []
    for path in paths:
        try:
            arrays.append(decode(path, channels, (height, width)))
        except Exception as err:  # PIL raises many kinds for a file that is not an image
            raise DataError(f"{path} is not a readable image: {err}") from err
    return torch.from_numpy(np.stack(arrays))


def read_csv_rows(path: Path, width: int) -> tuple[Tensor, list[str]]:
    """Numeric CSV rows (an optional header is skipped) → float tensor (N, width)."""
    rows, names = [], []
    with path.open(newline="") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            cells = [cell.strip() for cell in row if cell.strip()]
            if not cells:
                continue
            try:
                values = [float(cell) for cell in cells]
            except ValueError:
                if not rows and number == 1:
                    continue  # a header
                raise DataError(f"{path}, line {number}: not all numbers: {row}") from None
            if len(values) != width:
                raise DataError(
                    f"{path}, line {number}: {len(values)} values, the model takes {width}"
                )
            rows.append(values)
            names.append(f"{path.name}:{number}")
    if not rows:
        raise DataError(f"{path} has no data rows")
    return torch.tensor(rows, dtype=torch.float32), names


def load_inputs(
    spec: str, datamodule: InMemoryDataModule, num_samples: int
) -> tuple[Tensor, list[str], Tensor | None]:
    """Model-ready inputs, a name for each, and the true targets when they are known.

    ``spec`` is ``test`` (the first ``num_samples`` of the test split), an image file or a
    folder of images (image datasets), or a CSV file (tabular and regression datasets).
    """
    if spec == "test":
        x, y = datamodule.sample("test", num_samples)
        return x.cpu(), [f"test[{i}]" for i in range(len(x))], y.cpu()
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"input not found: {path} (give an image, a folder, a .csv, or 'test')")
    shape = tuple(datamodule.input_shape)
    if path.suffix.lower() == ".csv":
        if len(shape) != 1:
            raise ConfigError(f"this model takes {shape} images; give image files, not a CSV")
        return datamodule.read_table(path)
    files = (
        sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if path.is_dir()
        else [path]
    )
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {path}")
    if len(shape) != 3:
        raise ConfigError(f"this model takes {shape[0]} numbers per sample; give a .csv file")
    return datamodule.encode(read_images(files, shape)), [f.name for f in files], None
