"""Batches of in-memory tensors by index: the epoch's order, batches, chunks of batches.

A split lives in memory as tensors (on the training device when asked), so a batch is one
fancy-index of a shuffled index vector, never per-sample Python. These iterables stand in
for Lightning's dataloaders: ``TensorBatches`` over tensors, ``LoaderBatches`` over a
``DataLoader`` in the very same order, and ``Chunked`` hands several batches to one
``training_step`` (``task.steps_per_execution``).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from litnets.data.augment import BatchAugment
from litnets.errors import ConfigError


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
        encode: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.batch_size = batch_size
        self.sampler = sampler
        self.drop_last = drop_last
        self.augment = augment
        self.encode = encode
        """Stored inputs → model inputs, applied where batches are gathered (before any
        augmentation), for splits kept in the dataset's own units (``encodes_batches``)."""
        self.handed_out = 0
        """Batches of the current epoch handed out so far."""
        self.batches_per_gather = 1
        """How many consecutive batches one indexing operation fetches (``Chunked`` sets
        it from its chunk size, ``gather_size``): fewer kernel launches than one per batch."""
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
    def __iter__(self) -> Generator[Sequence[Tensor], None, None]:
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

    def _encoded(self, tensors: Sequence[Tensor]) -> tuple[Tensor, ...]:
        """Gathered ``(inputs, *rest)`` with the inputs encoded, when there is an ``encode``."""
        if self.encode is None:
            return tuple(tensors)
        inputs, *rest = tensors
        return (self.encode(inputs), *rest)

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
                yield self._encoded([t[first : first + size] for t in self.tensors])
            return
        order = self.sampler.indices().to(self.device)
        per_gather = size * self.batches_per_gather
        for block_start in range(start * size, stop, per_gather):
            index = order[block_start : min(block_start + per_gather, stop)]
            # index_select copies whole rows: 9x faster than t[index] for byte images on CPU.
            block = self._encoded([t.index_select(0, index) for t in self.tensors])
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


CPU_GATHER_BATCHES = 8
"""The most batches one gather fetches on the CPU.

A chunk of K batches could come from one gather, and on a GPU it does (one launch per
chunk). On the CPU a block of 32 MNIST batches is 6.4 MB of floats, made and freed every
chunk, and in a live run it cost 7 000-16 000 minor page faults an epoch (the plain
loop's per-batch gathers, ≈ 500); blocks of 8 batches (1.6 MB) took 5 000-8 000 and made
``experiment=mnist_mlp``'s epochs ≈ 2-3 % faster: by median over paired epochs, 1.8, 4.4,
2.1 and 2.6 % in four runs, 2.2 and 2.8 % with the two sizes swapped between even and odd
epochs, and -0.5 and -1.1 % in two more (these machines are noisy); 4 batches gave 0.6 and
1.2 %, 16 gave 1.6 %."""


def gather_size(batches: Batches, chunk_size: int) -> int:
    """Batches per gather for chunks of ``chunk_size``: the chunk, capped on the CPU."""
    if batches.device.type == "cpu":
        return min(chunk_size, CPU_GATHER_BATCHES)
    return chunk_size


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
        batches.batches_per_gather = gather_size(batches, self.size)

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
        self._new_loader = partial(
            DataLoader,
            dataset,
            batch_size=batch_size,
            sampler=self.order,
            drop_last=self.drop_last,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )
        self.loader = self._new_loader()
        self._epoch: Generator[Sequence[Tensor], None, None] | None = None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def __iter__(self) -> Generator[Sequence[Tensor], None, None]:
        self._epoch = super().__iter__()
        return self._epoch

    def close(self) -> None:
        """Stop the worker processes now, not at garbage collection.

        Lightning stops a ``DataLoader``'s persistent workers when a stage ends, but cannot
        see this one. Without this they lived until the trainer and datamodule (which refer
        to each other) were collected, where Python 3.12 reported errors from the queues'
        threads: garbage is finalised in no set order. Closing the epoch in progress (one
        that ``max_steps`` or the sanity check stopped) and the loader leaves the workers'
        iterator unreferenced, and freeing it stops them.
        """
        if self._epoch is not None:
            self._epoch.close()
            self._epoch = None
        self.loader = self._new_loader()  # workers start at its first iteration

    def _unaugmented(self, start: int) -> Iterator[Sequence[Tensor]]:
        self.order.skip = start * self.batch_size
        return map(self._encoded, self.loader)
