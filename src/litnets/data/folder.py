"""Your own images: ``data=image_folder data.root=photos/``, one subfolder per class.

torchvision's layout: ``root/<class>/*.png|jpg|...`` (a seeded, stratified test split is
taken), or ``root/train/<class>/...`` with ``root/test/<class>/...``; class names are the
folder names, and validation comes out of the training images (stratified too).

Images are decoded once (PIL, in a thread pool), converted to ``channels`` and resized to
``image_size`` (both default to what the images are, when they agree), and cached in
``cache_dir`` as one uint8 tensor file, keyed by every file's path, size and modification
time: a second run loads that file instead of decoding. Normalisation statistics come from
the training images unless given. Unreadable files are skipped and reported (or, with
``on_bad_image=error``, stop the run). Size, channels, statistics and class names travel in
the checkpoint, so ``litnets predict`` treats new image files exactly as training did.

``loader=torch`` decodes nothing up front: a ``DataLoader``'s worker processes read and
decode each batch's files, for folders larger than memory.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from litnets.data.base import InMemoryDataModule, Split, scale_pixels
from litnets.errors import ConfigError, DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
CACHE_VERSION = "1"


@dataclass
class ImagePreprocessing:
    """How files become model inputs, as plain data: size, channels, normalisation, classes."""

    image_size: list[int]
    channels: int
    mean: list[float]
    std: list[float]
    classes: list[str]


@dataclass
class FolderScan:
    """The folder as listed and its headers read: readable files, their classes and split."""

    files: list[Path]
    labels: list[int]
    part: list[str]  # "train" / "test" (root/train, root/test) or "all"
    classes: list[str]
    sizes: Counter
    grey: bool
    key: str  # changes whenever a file is added, removed or modified


def decode(path: Path, channels: int, size: tuple[int, int]) -> np.ndarray:
    """One image file → uint8 (channels, height, width) in the given mode and size."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.array(image, dtype=np.uint8)  # a writable copy
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _header(path: Path) -> tuple[int, int, str] | None:
    """Height, width and mode from the file's header, after a full decode check; None if bad."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()  # reads the whole file: a truncated one fails here, not in training
            width, height = image.size
            return height, width, image.mode
    except Exception:  # PIL raises many kinds for a damaged file
        return None


class FileImages(Dataset):
    """Image files decoded on demand (``loader=torch``): what a DataLoader worker reads."""

    def __init__(self, files: list[Path], labels: Tensor, module: ImageFolderDataModule) -> None:
        self.files, self.labels, self.module = files, labels, module

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        fitted = self.module.preprocessing
        raw = decode(self.files[index], fitted.channels, tuple(fitted.image_size))
        return self.module.encode(torch.from_numpy(raw)[None])[0], self.labels[index]


class ImageFolderDataModule(InMemoryDataModule):
    """A folder of images in class subfolders (torchvision's ``ImageFolder`` layout)."""

    def __init__(
        self,
        root: str | None = None,
        image_size: list[int] | None = None,
        channels: Literal[1, 3] | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        test_size: float = 0.2,
        cache_dir: str | None = None,
        on_bad_image: Literal["skip", "error"] = "skip",
        decode_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser() if root else None
        self.image_size = [int(s) for s in image_size] if image_size is not None else None
        self.channels = channels
        self.mean, self.std = mean, std
        self.test_size = test_size
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.on_bad_image = on_bad_image
        self.decode_threads = decode_threads or min(8, os.cpu_count() or 1)
        self.preprocessing: ImagePreprocessing | None = None
        self._scan: FolderScan | None = None
        self._parts: dict[str, np.ndarray] | None = None

    # ---- what the task needs before training ----------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        fitted = self._described()
        return (fitted.channels, *fitted.image_size)

    @property
    def num_outputs(self) -> int:
        return len(self._described().classes)

    @property
    def class_names(self) -> list[str]:
        return self._described().classes

    def check_available(self) -> None:
        self._described()

    def encode(self, raw: Tensor) -> Tensor:
        """uint8 images → [0, 1] → normalised with the training images' statistics."""
        fitted = self._described()
        if not fitted.mean:
            self._fit_statistics()
        mean = torch.tensor(fitted.mean, device=raw.device).view(-1, 1, 1)
        std = torch.tensor(fitted.std, device=raw.device).view(-1, 1, 1)
        return scale_pixels(raw, mean, std)

    # ---- carried in checkpoints -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if not self._described().mean:
            self._fit_statistics()
        return {"preprocessing": asdict(self.preprocessing)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.preprocessing = ImagePreprocessing(**state["preprocessing"])

    # ---- loading ----------------------------------------------------------------------------
    @property
    def streams(self) -> bool:
        return self.loader == "torch"

    def load(self) -> dict[str, Split]:
        images = self._decoded()
        labels = torch.as_tensor(self._folder().labels, dtype=torch.long)
        return {
            name: (self.encode(images[idx]), labels[idx]) for name, idx in self._split().items()
        }

    def dataset(self, split: str) -> Dataset:
        scan, index = self._folder(), self._split()[split]
        labels = torch.as_tensor(scan.labels, dtype=torch.long)[index]
        self._described()
        if not self.preprocessing.mean:
            self._fit_statistics()
        return FileImages([scan.files[i] for i in index], labels, self)

    def setup(self, stage: str | None = None) -> None:
        if self.streams:  # nothing decoded into memory: the loaders read the files
            self._split()
            return
        super().setup(stage)

    def num_samples(self, split: str) -> int:
        return len(self._split()[split]) if self.streams else super().num_samples(split)

    def sample(self, split: str, count: int) -> Split:
        if not self.streams:
            return super().sample(split, count)
        dataset = self.dataset(split)
        items = [dataset[i] for i in range(min(count, len(dataset)))]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    # ---- the folder -------------------------------------------------------------------------
    def _described(self) -> ImagePreprocessing:
        """Size, channels and classes, from the headers (statistics come with decoding)."""
        if self.preprocessing is not None:
            return self.preprocessing
        scan = self._folder()
        if self.image_size is None and len(scan.sizes) > 1:
            common = ", ".join(f"{h}×{w}: {n}" for (h, w), n in scan.sizes.most_common(3))
            raise ConfigError(
                f"the images in {self.root} differ in size ({common}{', ...' if len(scan.sizes) > 3 else ''}): "
                "choose one with data.image_size=[height,width]"
            )
        size = self.image_size or list(next(iter(scan.sizes)))
        channels = self.channels or (1 if scan.grey else 3)
        mean = [float(v) for v in self.mean] if self.mean is not None else []
        std = [float(v) for v in self.std] if self.std is not None else []
        if (mean or std) and not (len(mean) == len(std) == channels):
            raise ConfigError(
                f"data.mean and data.std need {channels} values each, one per channel"
            )
        self.preprocessing = ImagePreprocessing(size, channels, mean, std, scan.classes)
        return self.preprocessing

    def _listing(self) -> tuple[list[tuple[Path, str]], str]:
        """Image files in class subfolders, with their part; and a key that changes whenever a
        file is added, removed or modified (``os.scandir``: one stat per file)."""
        if self.root is None:
            raise ConfigError(
                "data=image_folder needs data.root=<folder with one subfolder per class>"
            )
        if not self.root.is_dir():
            raise DataError(f"data.root: no such folder {self.root}")
        given = (self.root / "train").is_dir() and (self.root / "test").is_dir()
        parts = (
            {"train": self.root / "train", "test": self.root / "test"}
            if given
            else {"all": self.root}
        )
        key = hashlib.sha256(f"{CACHE_VERSION}\0{self.root.resolve()}".encode())
        listing = []
        for part, folder in parts.items():
            for class_dir in sorted(e.path for e in os.scandir(folder) if e.is_dir()):
                entries = sorted(os.scandir(class_dir), key=lambda e: e.name)
                for entry in entries:
                    if Path(entry.name).suffix.lower() in IMAGE_SUFFIXES and entry.is_file():
                        stat = entry.stat()
                        listing.append((Path(entry.path), part))
                        key.update(f"{part}/{entry.path[len(str(self.root)):]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())  # fmt: skip
        return listing, key.hexdigest()[:32]

    def _folder(self) -> FolderScan:
        """List the folder and read every header (or the cached reading of an unchanged folder)."""
        if self._scan is not None:
            return self._scan
        listing, digest = self._listing()
        cached = self._cache(f"{digest}.scan.pt")
        if cached:
            ok, heights, widths, grey = (cached[k] for k in ("ok", "heights", "widths", "grey"))
        else:
            headers = self._map(_header, [path for path, _ in listing], "reading image headers")
            ok = torch.tensor([h is not None for h in headers], dtype=torch.bool)
            heights = torch.tensor([h[0] if h else 0 for h in headers])
            widths = torch.tensor([h[1] if h else 0 for h in headers])
            grey = torch.tensor([bool(h) and h[2] in GREY_MODES for h in headers])
            self._store(f"{digest}.scan.pt", {"ok": ok, "heights": heights, "widths": widths, "grey": grey})  # fmt: skip
        bad = [path for (path, _), fine in zip(listing, ok.tolist(), strict=True) if not fine]
        if bad:
            names = ", ".join(str(p.relative_to(self.root)) for p in bad[:3])
            if self.on_bad_image == "error":
                raise DataError(f"{len(bad)} unreadable image file(s) in {self.root}: {names}")
            more = ", ..." if len(bad) > 3 else ""
            print(f"litnets: data: skipping {len(bad)} unreadable image file(s) in {self.root}: {names}{more}", file=sys.stderr)  # fmt: skip
        keep = ok.nonzero().flatten().tolist()
        kept = [listing[i] for i in keep]
        classes = sorted({path.parent.name for path, _ in kept})
        if len(classes) < 2:
            raise DataError(f"data.root: {self.root} needs at least two class subfolders of images, found {classes or 'none'}")  # fmt: skip
        index = {name: i for i, name in enumerate(classes)}
        sizes = Counter(zip(heights[keep].tolist(), widths[keep].tolist(), strict=True))
        self._scan = FolderScan(
            files=[path for path, _ in kept],
            labels=[index[path.parent.name] for path, _ in kept],
            part=[part for _, part in kept],
            classes=classes,
            sizes=sizes,
            grey=bool(grey[keep].all()),
            key=digest,
        )
        return self._scan

    def _split(self) -> dict[str, np.ndarray]:
        """Indices of train, val and test into the scan: seeded and stratified."""
        if self._parts is not None:
            return self._parts
        scan = self._folder()
        labels = np.asarray(scan.labels)
        parts = np.asarray(scan.part)
        if (parts == "test").any():
            test, rest = np.flatnonzero(parts == "test"), np.flatnonzero(parts == "train")
        else:
            rest, test = self._stratified(
                np.arange(len(labels)), labels, self.test_size, "data.test_size"
            )
        train, val = self._stratified(rest, labels, self.val_size, "data.val_size")
        self._parts = {"train": train, "val": val, "test": test}
        return self._parts

    def _stratified(self, index: np.ndarray, labels: np.ndarray, size: float | int, key: str) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        from sklearn.model_selection import train_test_split

        try:
            first, second = train_test_split(
                index, test_size=size, random_state=self.seed, stratify=labels[index]
            )
        except ValueError as err:
            raise DataError(
                f"{key}={size}: {err} (add images, or give root/train and root/test)"
            ) from None
        return np.sort(first), np.sort(second)

    # ---- decoding, statistics and the cache ---------------------------------------------------
    def _decoded(self) -> Tensor:
        """Every kept image as uint8 (N, C, H, W), decoded once per folder, size and channels."""
        scan, fitted = self._folder(), self._described()
        name = f"{scan.key}.{fitted.channels}x{fitted.image_size[0]}x{fitted.image_size[1]}.pt"
        cached = self._cache(name)
        if cached:
            return cached["images"]
        size = tuple(fitted.image_size)
        arrays = self._map(
            lambda path: decode(path, fitted.channels, size), scan.files, "decoding images"
        )
        images = torch.from_numpy(np.stack(arrays))
        self._store(name, {"images": images})
        return images

    def _fit_statistics(self, decoded: Tensor | None = None) -> None:
        """Per-channel mean and std of the training images (a sample when streaming), in [0, 1]."""
        fitted, scan = self._described(), self._folder()
        train = self._split()["train"]
        if decoded is not None:
            images = decoded[train]
        elif self.streams:
            sample = train[:: max(1, len(train) // 2000)]
            size = tuple(fitted.image_size)
            images = torch.from_numpy(np.stack(self._map(lambda i: decode(scan.files[i], fitted.channels, size), list(sample), "sampling image statistics")))  # fmt: skip
        else:
            images = self._decoded()[train]
        pixels = images.float().div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)
        fitted.mean = [float(v) for v in pixels.mean(dim=1)]
        fitted.std = [max(float(v), 1e-6) for v in pixels.std(dim=1)]

    def _map(self, function: Any, items: list[Any], what: str) -> list[Any]:
        """``function`` over ``items`` on the decode threads, with a progress bar on a terminal:
        a first decoding of tens of thousands of images takes a while."""
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=f"litnets: data: {what}", unit=" files",
                   disable=None, leave=False, file=sys.stderr)  # fmt: skip
        with bar, ThreadPoolExecutor(self.decode_threads) as pool:
            results = []
            for result in pool.map(function, items, chunksize=64):
                results.append(result)
                bar.update()
            return results

    def _cache(self, name: str) -> dict[str, Any] | None:
        path = self.cache_dir / "image_folder" / name if self.cache_dir else None
        if path is None or not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a damaged cache file: decode again
            path.unlink(missing_ok=True)
            return None

    def _store(self, name: str, payload: dict[str, Any]) -> None:
        if self.cache_dir is None:
            return
        path = self.cache_dir / "image_folder" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)
