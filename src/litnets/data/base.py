"""In-memory datamodules: decode a dataset once into tensors, then batch by index.

All tutorial datasets fit in memory, so the fast path never touches per-sample Python:
each split is a pair of tensors (on the training device when asked), and a batch is one
fancy-index of a shuffled index vector. ``TensorBatches`` is a plain iterable that
Lightning accepts wherever it expects a dataloader.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from litnets.data.augment import BatchAugment
from litnets.errors import ConfigError
from litnets.signatures import PositiveInt

Split = tuple[Tensor, Tensor]
"""Inputs and targets of one split, with the same first dimension."""


class EpochIndexSampler:
    """The index order of one epoch, a pure function of (seed, epoch, rank).

    Lightning calls ``set_epoch`` before every training epoch (also after a resume), so the
    data order is reproducible and restored exactly without saving any iterator state.
    With ``world_size > 1`` every rank takes a disjoint, equally long shard (the few samples
    that do not divide evenly are left out of that epoch), so ranks run the same number of
    steps and no sample is seen twice per epoch.
    """

    def __init__(
        self,
        num_samples: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_uneven: bool = True,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.drop_uneven = drop_uneven
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.world_size == 1:
            return self.num_samples
        if self.drop_uneven:
            return self.num_samples // self.world_size
        return len(range(self.rank, self.num_samples, self.world_size))

    @property
    def is_identity(self) -> bool:
        """True when the order is simply 0..n-1, so batches can be cheap slices."""
        return not self.shuffle and self.world_size == 1

    def indices(self) -> Tensor:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=generator)
        else:
            order = torch.arange(self.num_samples)
        if self.world_size > 1:
            if self.drop_uneven:
                order = order[: len(self) * self.world_size]
            order = order[self.rank :: self.world_size]
        return order

    def generator(self, device: torch.device) -> torch.Generator:
        """Random draws (augmentation) for this epoch on this rank, apart from the order's."""
        seed = ((self.seed * 1_000_003 + self.epoch) * 1_009 + self.rank) % 2**63
        return torch.Generator(device=device).manual_seed(seed)


class Batches(ABC):
    """An epoch's batches in ``sampler``'s order, augmented when asked; Lightning iterates it.

    The ``sampler`` attribute is what Lightning looks for to call ``set_epoch``;
    ``batch_sampler = None`` tells its dataloader checks that there is no other sampler.
    Being a plain iterable, not a ``DataLoader``, it is never re-sharded by Lightning:
    ``sampler`` shards per rank already.

    It is resumable (Lightning's ``state_dict``/``load_state_dict`` protocol): the state is
    the epoch and how many batches of it were handed out. Lightning saves it with every
    checkpoint and loads it before iterating again, and since a sized iterable is not
    fetched ahead, a checkpoint taken between steps counts exactly the batches trained on.
    Resumed mid-epoch, the iterator skips those batches and replays their augmentation
    draws, so the rest of the epoch is the very batches an uninterrupted run would see.
    """

    batch_sampler = None

    def __init__(
        self,
        batch_size: int,
        sampler: EpochIndexSampler,
        *,
        drop_last: bool = False,
        augment: BatchAugment | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.sampler = sampler
        self.drop_last = drop_last
        self.augment = augment
        self.handed_out = 0
        """Batches of the current epoch handed out so far."""
        self.batches_per_gather = 1
        """How many consecutive batches one indexing operation fetches (``Chunked`` sets
        its chunk size): one kernel launch per chunk instead of one per batch."""
        self._resume_at: dict[str, int] | None = None

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # ---- resuming ------------------------------------------------------------------------
    def state_dict(self, batches_per_call: int = 1) -> dict[str, int]:
        return {
            "epoch": self.sampler.epoch,
            "batches": self.handed_out,
            "batch_size": self.batch_size,
            "batches_per_call": batches_per_call,
        }

    def load_state_dict(self, state: dict[str, int], batches_per_call: int = 1) -> None:
        """Resume at ``state``'s position. Lightning resumes its own count of the epoch's calls,
        so a mid-epoch position needs the batch size and batches per call it was taken with."""
        if 0 < state["batches"] < len(self):
            for key, now, option in (
                ("batch_size", self.batch_size, "data.batch_size"),
                ("batches_per_call", batches_per_call, "task.steps_per_execution"),
            ):
                if state.get(key, 1) != now:
                    raise ConfigError(
                        f"the checkpoint stopped mid-epoch with {key.replace('_', ' ')} "
                        f"{state.get(key, 1)}: resume with {option}={state.get(key, 1)} "
                        f"(not {now})"
                    )
        self._resume_at = dict(state)

    def _start(self) -> int:
        """Where this iteration starts: the loaded position, if it is this very epoch."""
        state, self._resume_at = self._resume_at, None
        if state and state["epoch"] == self.sampler.epoch and state["batches"] < len(self):
            return state["batches"]
        return 0

    # ---- iterating -----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Sequence[Tensor]]:
        start = self._start()
        self.handed_out = start
        generator = self.sampler.generator(self.device) if self.augment is not None else None
        if generator is not None:
            for size in self._batch_sizes()[:start]:  # the skipped batches' draws
                self.augment.draw(size, generator, self.device)
        for inputs, *rest in self._unaugmented(start):
            if generator is not None:
                inputs = self.augment(inputs, generator)
            self.handed_out += 1
            yield (inputs, *rest)

    def _batch_sizes(self) -> list[int]:
        n, size = len(self.sampler), self.batch_size
        return [min(size, n - start) for start in range(0, len(self) * size, size)]

    @property
    @abstractmethod
    def device(self) -> torch.device:
        """Where the batches are made (and augmented)."""

    @abstractmethod
    def _unaugmented(self, start: int) -> Iterator[Sequence[Tensor]]:
        """The epoch's batches from batch number ``start`` on."""


class TensorBatches(Batches):
    """Batches sliced from in-memory tensors; a lean stand-in for a ``DataLoader``."""

    def __init__(self, tensors: Sequence[Tensor], batch_size: int, sampler: EpochIndexSampler,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(batch_size, sampler, **kwargs)
        self.tensors = tuple(tensors)

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def _unaugmented(self, start: int) -> Iterator[tuple[Tensor, ...]]:
        size = self.batch_size
        stop = len(self) * size if self.drop_last else len(self.sampler)
        if self.sampler.is_identity:  # slices of the tensors themselves: nothing to gather
            for first in range(start * size, stop, size):
                yield tuple(t[first : first + size] for t in self.tensors)
            return
        order = self.sampler.indices().to(self.device)
        per_gather = size * self.batches_per_gather
        for block_start in range(start * size, stop, per_gather):
            index = order[block_start : min(block_start + per_gather, stop)]
            block = tuple(t[index] for t in self.tensors)
            for first in range(0, len(index), size):  # views of the block: no more copies
                yield tuple(b[first : first + size] for b in block)


class Chunk(list):
    """Consecutive training batches that one ``training_step`` runs as that many steps.

    ``first_index`` is the epoch's index of the first batch, so the task steps batch-interval
    schedulers and the progress bar counts batches exactly as with one batch per call.
    """

    def __init__(self, batches: Sequence[Sequence[Tensor]], first_index: int) -> None:
        super().__init__(batches)
        self.first_index = first_index


class Chunked:
    """``batches`` in chunks of ``size`` (``task.steps_per_execution``), in the same order.

    Lightning sees one "batch" per chunk, so its per-batch machinery (hook dispatch,
    progress tracking, ≈ 0.3-0.5 ms) runs once per ``size`` optimizer steps. A chunk is
    made in full before it is handed out. Resumable as ``batches`` is: checkpoints are taken
    between Lightning calls, so a resumed epoch goes on at a chunk boundary.
    """

    batch_sampler = None

    def __init__(self, batches: Batches, size: int | None = None) -> None:
        """``size=None``: the whole epoch in one chunk."""
        self.batches = batches
        self.size = max(1, min(size or len(batches), len(batches)))
        batches.batches_per_gather = self.size

    @property
    def sampler(self) -> EpochIndexSampler:
        """The order's sampler, for Lightning's ``set_epoch``."""
        return self.batches.sampler

    @property
    def num_batches(self) -> int:
        return len(self.batches)

    def __len__(self) -> int:
        return math.ceil(len(self.batches) / self.size)

    def state_dict(self) -> dict[str, int]:
        return self.batches.state_dict(batches_per_call=self.size)

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batches.load_state_dict(state, batches_per_call=self.size)

    def __iter__(self) -> Iterator[Chunk]:
        pending: list[Sequence[Tensor]] = []
        first = None
        for batch in self.batches:
            if first is None:
                first = self.batches.handed_out - 1  # 0, or where a resumed epoch goes on
            pending.append(batch)
            if len(pending) == self.size:
                yield Chunk(pending, first)
                first += self.size
                pending = []
        if pending:
            yield Chunk(pending, first)


class _EpochOrder(Sampler[int]):
    """``EpochIndexSampler``'s order for a ``DataLoader`` (read in the main process)."""

    def __init__(self, sampler: EpochIndexSampler) -> None:
        self.sampler = sampler
        self.skip = 0
        """Leading samples to leave out (a resumed epoch); read at the next ``iter``."""

    def __iter__(self) -> Iterator[int]:
        skip, self.skip = self.skip, 0
        return iter(self.sampler.indices()[skip:].tolist())

    def __len__(self) -> int:
        return len(self.sampler)


class LoaderBatches(Batches):
    """A ``DataLoader`` over any map-style dataset: worker processes, pinned memory.

    For data read lazily, sample by sample (a dataset that does not fit in memory); the
    order, sharding and augmentation are those of ``TensorBatches``, so the two give the
    very same batches and a resumed run is exact either way.
    """

    def __init__(self, dataset: Dataset, batch_size: int, sampler: EpochIndexSampler, *,
                 num_workers: int = 0, pin_memory: bool = False, **kwargs: Any) -> None:  # fmt: skip
        super().__init__(batch_size, sampler, **kwargs)
        self.order = _EpochOrder(sampler)
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=self.order,
            drop_last=self.drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def _unaugmented(self, start: int) -> Iterator[Sequence[Tensor]]:
        self.order.skip = start * self.batch_size
        return iter(self.loader)


def scale_pixels(raw: Tensor, mean: float | Tensor, std: float | Tensor) -> Tensor:
    """uint8 pixels → ``ToTensor`` scaling to [0, 1], then ``Normalize(mean, std)``."""
    return raw.float().div_(255.0).sub_(mean).div_(std)


def _count(size: float | int, total: int, name: str) -> int:
    """A split size given as a fraction of ``total`` (float below 1) or as a count."""
    count = round(size * total) if isinstance(size, float) and size < 1 else int(size)
    if not 0 < count < total:
        raise ConfigError(
            f"{name}={size} must leave at least one sample on each side of {total} samples"
        )
    return count


class InMemoryDataModule(L.LightningDataModule, ABC):
    """Shared base: subclasses only say how to load their tensors.

    The base carves a seeded validation split out of the training part, applies an optional
    fitted preprocessing step, keeps everything on the training device if ``on_device``,
    and serves ``TensorBatches`` (sharded per rank under DDP). With ``loader="torch"`` it
    serves a ``DataLoader`` over ``dataset(split)`` instead, with worker processes: the
    path for data read sample by sample (override ``dataset``), in the very same order.
    """

    task: ClassVar[str] = "classification"
    """``classification`` (integer class targets) or ``regression`` (float targets)."""

    def __init__(
        self,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt | None = None,
        val_size: float | int = 0.1,
        seed: int = 0,
        drop_last: bool = False,
        on_device: bool = True,
        augment: Mapping[str, Any] | None = None,
        loader: Literal["tensors", "torch"] = "tensors",
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.val_size = val_size
        self.seed = seed
        self.drop_last = drop_last
        if loader not in ("tensors", "torch"):
            raise ConfigError(f"data.loader must be tensors or torch, got {loader!r}")
        if loader == "tensors" and num_workers:
            raise ConfigError("data.num_workers needs data.loader=torch (tensors need no workers)")
        self.loader = loader
        self.num_workers = num_workers
        self.on_device = on_device and loader == "tensors"  # workers read host memory
        self.augment = self._parse_augment(augment or {})
        self.splits: dict[str, Split] = {}
        self.steps_per_chunk: int | None = 1
        """Training batches per Lightning call, ``None`` for a whole epoch; the task sets it
        from ``task.steps_per_execution`` when fitting starts."""

    # ---- what a dataset declares ---------------------------------------------------------
    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input sample, known before any data is loaded."""

    @property
    @abstractmethod
    def num_outputs(self) -> int:
        """Number of classes (classification) or of target values (regression)."""

    @property
    def class_names(self) -> list[str] | None:
        return None

    @property
    def target_scaling(self) -> tuple[float, float] | None:
        """(mean, std) of a regression target the model should learn standardised, if any."""
        return None

    def encode(self, raw: Tensor) -> Tensor:
        """Inputs in the dataset's own units (pixels 0-255, centimetres, x) → model inputs.

        The same transformation ``load``/``preprocess`` apply, so prediction on user files
        sees exactly what training saw.
        """
        return raw.float()

    def read_table(self, path: Path) -> tuple[Tensor, list[str], Tensor | None]:
        """A CSV of raw feature rows (for ``predict``) → model inputs, row names, targets.

        The default reads numbers only, in the dataset's own units, and encodes them as
        training did; tables with named, text or missing columns override this.
        """
        from litnets.inputs import read_csv_rows

        raw, names = read_csv_rows(path, self.input_shape[0])
        return self.encode(raw), names, None

    def check_available(self) -> None:
        """Raise ``DataError`` now if the files are missing, before any training is set up."""

    @abstractmethod
    def load(self) -> dict[str, Split]:
        """Return at least ``train`` and ``test`` splits; ``val`` is optional."""

    def dataset(self, split: str) -> Dataset:
        """The samples ``loader=torch`` reads; a dataset too big for memory overrides this."""
        return TensorDataset(*self.splits[split])

    def num_samples(self, split: str) -> int:
        """How many samples ``split`` holds."""
        self.setup()
        return len(self.splits[split][0])

    def sample(self, split: str, count: int) -> Split:
        """The first ``count`` samples of ``split`` (pictures, ``predict input=test``)."""
        self.setup()
        x, y = self.splits[split]
        return x[:count], y[:count]

    def preprocess(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Fit any preprocessing on the training split and apply it to all (default: none)."""
        return splits

    def encoded(self, splits: dict[str, Split]) -> dict[str, Split]:
        """Every split's inputs through ``encode``: for a ``load`` that returns raw units,
        called from ``preprocess`` (after the validation split, on the smaller raw values)."""
        return {name: (self.encode(x), y) for name, (x, y) in splits.items()}

    # ---- Lightning hooks -----------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        splits = self.load()
        if "val" not in splits:
            splits = self._split_off_validation(splits)
        splits = self.preprocess(splits)
        device = self._device()
        self.splits = {name: (x.to(device), y.to(device)) for name, (x, y) in splits.items()}

    @property
    def can_chunk(self) -> bool:
        """Whether training batches can come several to a Lightning call (in-memory tensors)."""
        return self.loader == "tensors"

    def train_dataloader(self) -> Batches | Chunked:
        # overfit_batches: the same few batches every epoch, so no shuffling and no
        # augmentation (Lightning can only switch shuffling off in a DataLoader itself).
        overfit = self.trainer is not None and self.trainer.overfit_batches > 0
        batches = self._batches(
            "train",
            self.batch_size,
            shuffle=not overfit,
            drop_last=self.drop_last,
            augment=None if overfit else self._augment(),
        )
        return batches if self.steps_per_chunk == 1 else Chunked(batches, self.steps_per_chunk)

    def val_dataloader(self) -> Batches:
        return self._batches("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> Batches:
        return self._batches("test", self.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> Batches:
        return self.test_dataloader()

    # ---- helpers -------------------------------------------------------------------------
    def _split_off_validation(self, splits: dict[str, Split]) -> dict[str, Split]:
        x, y = splits["train"]
        n_val = _count(self.val_size, len(x), "data.val_size")
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(x), generator=generator)
        val, train = order[:n_val], order[n_val:]
        # index_select copies whole rows: 2× faster than x[train] for MNIST's (60000, 784) bytes
        return {
            **splits,
            "train": (x.index_select(0, train), y.index_select(0, train)),
            "val": (x.index_select(0, val), y.index_select(0, val)),
        }

    @staticmethod
    def _parse_augment(options: Mapping[str, Any]) -> BatchAugment:
        try:
            return BatchAugment(**options)
        except TypeError as err:
            given = ", ".join(sorted(options))
            raise ConfigError(f"data.augment takes hflip and crop_padding, got {given}") from err

    def _augment(self) -> BatchAugment | None:
        """The training-batch augmentation, padding with the encoded value of black."""
        if not self.augment.active:
            return None
        if len(self.input_shape) != 3:
            raise ConfigError(
                f"data.augment works on images; {type(self).__name__} inputs have shape "
                f"{self.input_shape}"
            )
        black = self.encode(torch.zeros((1, *self.input_shape), dtype=torch.uint8))
        self.augment.fill = black[0, :, 0, 0].cpu()
        return self.augment

    def _device(self) -> torch.device:
        trainer = self.trainer
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool,
        drop_last: bool = False,
        augment: BatchAugment | None = None,
    ) -> Batches:
        self.setup()  # once: later calls return at once
        dataset = self.dataset(split) if self.loader == "torch" else None
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = EpochIndexSampler(
            len(dataset) if dataset is not None else len(self.splits[split][0]),
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            world_size=world,
            drop_uneven=split == "train",
        )
        options = {"drop_last": drop_last, "augment": augment}
        if dataset is None:
            return TensorBatches(self.splits[split], batch_size, sampler, **options)
        pin = trainer is not None and trainer.strategy.root_device.type == "cuda"
        return LoaderBatches(
            dataset, batch_size, sampler, num_workers=self.num_workers, pin_memory=pin, **options
        )
