"""Datamodules: shapes, splits, determinism, the batch iterator, and clear data errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

from conftest import make_cifar_like, make_mnist_like
from litnets.data.augment import BatchAugment
from litnets.data.batches import EpochIndexSampler, LoaderBatches, TensorBatches
from litnets.data.cifar10 import CIFAR10DataModule
from litnets.data.iris import IrisDataModule
from litnets.data.mnist import FashionMNISTDataModule, MNISTDataModule
from litnets.data.synthetic import LinearDataModule, SineDataModule
from litnets.errors import ConfigError, DataError

# ---- the batch iterator --------------------------------------------------------------------


def epoch_order(batches: TensorBatches, epoch: int) -> torch.Tensor:
    batches.sampler.set_epoch(epoch)
    return torch.cat([b[0] for b in batches])


def test_every_sample_once_per_epoch_and_reshuffled() -> None:
    data = torch.arange(103)
    batches = TensorBatches([data, data], 10, EpochIndexSampler(103, shuffle=True, seed=1))
    first, second = epoch_order(batches, 0), epoch_order(batches, 1)
    assert len(batches) == 11
    assert sorted(first.tolist()) == list(range(103)) == sorted(second.tolist())
    assert not torch.equal(first, second)
    assert torch.equal(first, epoch_order(batches, 0)), "same seed and epoch, same order"


def test_batches_keep_inputs_and_targets_aligned() -> None:
    x = torch.arange(50)
    batches = TensorBatches([x, x * 2], 7, EpochIndexSampler(50, shuffle=True))
    for inputs, targets in batches:
        assert torch.equal(targets, inputs * 2)


def test_drop_last() -> None:
    data = torch.arange(25)
    batches = TensorBatches([data], 10, EpochIndexSampler(25, shuffle=False), drop_last=True)
    assert len(batches) == 2 and [len(b[0]) for b in batches] == [10, 10]


def test_two_ranks_split_an_epoch_without_overlap() -> None:
    data = torch.arange(101)
    shards = [
        TensorBatches([data], 8, EpochIndexSampler(101, shuffle=True, seed=3, rank=r, world_size=2))
        for r in (0, 1)
    ]
    seen = [epoch_order(s, 4) for s in shards]
    assert len(seen[0]) == len(seen[1]) == 50 and len(shards[0]) == len(shards[1])
    assert not set(seen[0].tolist()) & set(seen[1].tolist())


def test_nonpositive_batch_size_is_a_config_error() -> None:
    from litnets.build import instantiate_node

    node = {"_target_": "litnets.data.iris.IrisDataModule", "batch_size": 0}
    with pytest.raises(ConfigError, match=r"data\.batch_size must be a positive integer, got 0"):
        instantiate_node(node, "data")


# ---- the DataLoader path ----------------------------------------------------------------


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataloader_path_gives_the_same_batches(num_workers) -> None:
    images, targets = torch.rand(37, 1, 6, 6), torch.arange(37)
    augment = BatchAugment(hflip=True, crop_padding=1)

    def batches(kind: str, epoch: int, rank: int) -> list[torch.Tensor]:
        sampler = EpochIndexSampler(37, shuffle=True, seed=2, rank=rank, world_size=2)
        options = {"drop_last": False, "augment": augment}
        if kind == "tensors":
            iterable = TensorBatches([images, targets], 5, sampler, **options)
        else:
            dataset = torch.utils.data.TensorDataset(images, targets)
            iterable = LoaderBatches(dataset, 5, sampler, num_workers=num_workers, **options)
        sampler.set_epoch(epoch)  # what Lightning calls through `iterable.sampler`
        assert len(iterable) == 4  # 18 rows of this rank's shard, in batches of 5
        return [t for batch in iterable for t in batch]

    for epoch in (0, 1):
        for rank in (0, 1):
            ours, theirs = batches("tensors", epoch, rank), batches("torch", epoch, rank)
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_loader_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="tensors or torch"):
        IrisDataModule(loader="pandas")
    with pytest.raises(ConfigError, match=r"needs data\.loader=torch"):
        IrisDataModule(num_workers=2)


def train_tiny_mnist(run_dir: Path, data_dir: Path, *overrides: str) -> dict:
    """A real ``train`` run in this process on the tiny generated MNIST."""
    from litnets import training
    from litnets.config import compose

    common = [
        "data=mnist", f"paths.data_dir={data_dir}", "data.val_size=16", "logger=none",
        "pictures=false", "trainer.enable_model_summary=false", "data.batch_size=16",
    ]  # fmt: skip
    return training.train(compose([*common, *overrides], output_dir=str(run_dir)))


def worker_processes() -> int:
    """Live child processes of this one, without collecting garbage first."""
    import multiprocessing

    return len(multiprocessing.active_children())


def test_dataloader_workers_stop_when_the_stage_ends(tmp_path, tiny_data_dir) -> None:
    """Lightning stops a ``DataLoader``'s persistent workers when a stage ends, but cannot
    see the one inside ``LoaderBatches``: they lived on until garbage collection (the
    trainer and the datamodule refer to each other), where Python 3.12 shut them down with
    "Exception in thread QueueFeederThread" (finalizers of garbage run in no set order)."""
    import gc

    gc.collect()
    before = worker_processes()
    gc.disable()  # what is released must be released without it
    try:
        train_tiny_mnist(tmp_path, tiny_data_dir, "trainer.max_epochs=1", "data.loader=torch",
                         "data.num_workers=2")  # fmt: skip
        assert worker_processes() == before
    finally:
        gc.enable()


def test_closed_dataloader_batches_stop_mid_epoch_and_can_start_again() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(40.0), torch.arange(40))
    batches = LoaderBatches(dataset, 5, EpochIndexSampler(40, shuffle=True), num_workers=2)
    before = worker_processes()
    epoch = iter(batches)
    first = next(epoch)  # stopped here, as max_steps or the sanity check stop an epoch
    assert worker_processes() == before + 2
    batches.close()
    assert worker_processes() == before
    again = next(iter(batches))
    assert torch.equal(again[0], first[0])  # the same epoch, from its start
    batches.close()


def same_final_weights(*run_dirs: Path) -> bool:
    first, second = (
        torch.load(d / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for d in run_dirs
    )
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_training_through_a_dataloader_matches_the_tensor_path(tmp_path, tiny_data_dir) -> None:
    common = ["trainer.max_epochs=3", "data.augment.crop_padding=2"]
    tensors = train_tiny_mnist(tmp_path / "a", tiny_data_dir, *common)
    loader = ["data.loader=torch", "data.num_workers=2"]
    workers = train_tiny_mnist(tmp_path / "b", tiny_data_dir, *common, *loader)
    assert workers["test"] == tensors["test"]
    assert same_final_weights(tmp_path / "a", tmp_path / "b")


# ---- batched augmentation ----------------------------------------------------------------


def crops_of(image: torch.Tensor, padding: int, fill: float) -> list[torch.Tensor]:
    """Every crop ``RandomCrop(size, padding, fill)`` could return for one image."""
    c, h, w = image.shape
    padded = torch.full((c, h + 2 * padding, w + 2 * padding), fill)
    padded[:, padding : padding + h, padding : padding + w] = image
    return [
        padded[:, top : top + h, left : left + w]
        for top in range(2 * padding + 1)
        for left in range(2 * padding + 1)
    ]


def test_augment_draws_a_flip_and_a_crop_per_sample() -> None:
    images = torch.rand(64, 2, 6, 5)
    augment = BatchAugment(hflip=True, crop_padding=2, fill=(-1.0, -2.0))
    out = augment(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    flipped = 0
    for image, result in zip(images, out, strict=True):
        fill = torch.tensor([-1.0, -2.0])[:, None, None]
        candidates = crops_of(image - fill, 2, 0.0)  # per-channel fill, checked as 0
        plain = any(torch.equal(result - fill, crop) for crop in candidates)
        mirrored = any(torch.equal((result - fill).flip(-1), crop) for crop in candidates)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 10 < flipped < 54  # about half, drawn per sample
    shifted = [
        not torch.equal(r, i) and not torch.equal(r.flip(-1), i)
        for i, r in zip(images, out, strict=True)
    ]
    assert sum(shifted) > 40  # 24 of 25 offsets move the image


def test_augmented_epochs_are_reproducible_and_differ() -> None:
    images = torch.rand(40, 1, 8, 8)
    targets = torch.arange(40)

    def epoch(number: int, rank: int = 0) -> list[torch.Tensor]:
        sampler = EpochIndexSampler(40, shuffle=True, seed=5, rank=rank, world_size=1 + rank)
        sampler.set_epoch(number)
        augment = BatchAugment(hflip=True, crop_padding=1)
        batches = TensorBatches([images, targets], 8, sampler, augment=augment)
        return [x for batch in batches for x in batch]

    assert all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(3), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(epoch(3), epoch(4), strict=True))
    for batch in TensorBatches([images, targets], 8, EpochIndexSampler(40, shuffle=True)):
        assert torch.equal(batch[0], images[batch[1]])  # no augmentation unless asked


def crop_shift(augmented: torch.Tensor, original: torch.Tensor, pad: int, fill: float) -> tuple[int, int] | None:  # fmt: skip
    """The (dy, dx) for which ``augmented`` is ``original`` padded with ``fill`` and cropped."""
    height, width = original.shape[-2:]
    padded = torch.nn.functional.pad(original, (pad, pad, pad, pad), value=fill)
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            if torch.equal(padded[..., dy : dy + height, dx : dx + width], augmented):
                return dy - pad, dx - pad
    return None


@pytest.mark.parametrize("seed", range(6))
def test_datamodule_augments_training_batches_only(tmp_path, seed) -> None:
    """Crops shift the content and show black where the shift exposes the border."""
    make_mnist_like(tmp_path, "MNIST", n_train=40, n_test=20)
    dm = MNISTDataModule(
        data_dir=str(tmp_path), val_size=10, batch_size=30, augment={"crop_padding": 3}, seed=seed
    )
    dm.setup()
    # no black in the data itself (pixels 100..255), so any -1 below can only be padding
    raw = dm.splits["train"][0]
    dm.splits["train"] = (100 + raw // 2, dm.splits["train"][1])
    brightened = dm.encode(dm.splits["train"][0])
    black = float(dm.encode(torch.zeros(1, 1, 1, 1, dtype=torch.uint8)))
    assert black == -1.0 and float(brightened.min()) > black
    x, _ = next(iter(dm.train_dataloader()))
    order = dm.train_dataloader().sampler.indices()[: len(x)]
    shifts = [crop_shift(x[i], brightened[j], 3, black) for i, j in enumerate(order.tolist())]
    assert all(s is not None for s in shifts)  # every image: its own content, shifted
    assert any(s != (0, 0) for s in shifts)  # and the shifts are random, not all zero
    for image, shift in zip(x, shifts, strict=True):
        assert (image == black).any() == (shift != (0, 0))  # padding exactly where exposed
    val, _ = next(iter(dm.val_dataloader()))
    assert torch.equal(val, dm.encode(dm.splits["val"][0][: len(val)]))  # never augmented


@pytest.mark.parametrize(
    ("augment", "message"),
    [({"hflip": True, "roll": 2}, "takes hflip and crop_padding"), ({"crop_padding": -1}, "≥ 0")],
)
def test_bad_augment_options_are_config_errors(tmp_path, augment, message) -> None:
    with pytest.raises(ConfigError, match=message):
        MNISTDataModule(data_dir=str(tmp_path), augment=augment)


def test_augment_refuses_non_image_data() -> None:
    dm = IrisDataModule(augment={"hflip": True})
    with pytest.raises(ConfigError, match="works on images"):
        dm.train_dataloader()


# ---- datasets ------------------------------------------------------------------------------


def test_iris_uses_the_tutorial_split_and_scales_on_training_rows_only() -> None:
    dm = IrisDataModule(val_size=0.2, seed=0)
    dm.setup()
    sizes = {name: len(x) for name, (x, _) in dm.splits.items()}
    assert sizes == {"train": 96, "val": 24, "test": 30}
    x_train = dm.splits["train"][0]
    assert torch.allclose(x_train.min(0).values, torch.zeros(4))
    assert torch.allclose(x_train.max(0).values, torch.ones(4))
    assert dm.splits["test"][1].dtype == torch.int64
    assert dm.class_names == ["setosa", "versicolor", "virginica"]


def test_split_is_reproducible_under_a_seed() -> None:
    a, b, c = IrisDataModule(seed=5), IrisDataModule(seed=5), IrisDataModule(seed=6)
    for dm in (a, b, c):
        dm.setup()
    assert torch.equal(a.splits["val"][0], b.splits["val"][0])
    assert not torch.equal(a.splits["val"][0], c.splits["val"][0])


@pytest.mark.parametrize("module", [MNISTDataModule, FashionMNISTDataModule])
def test_mnist_format(tmp_path, module) -> None:
    make_mnist_like(tmp_path, module.folder, n_train=40, n_test=20)
    dm = module(data_dir=str(tmp_path), val_size=10, batch_size=8)
    dm.setup()
    x, y = dm.splits["train"]  # kept as bytes: batches are encoded as they are gathered
    assert x.shape == (30, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert len(dm.splits["val"][0]) == 10 and len(dm.splits["test"][0]) == 20
    x_batch, y_batch = next(iter(dm.train_dataloader()))
    assert x_batch.shape == (8, 1, 28, 28) and y_batch.shape == (8,)
    assert x_batch.dtype == torch.float32
    assert len(dm.class_names) == 10


def test_mnist_normalisation_is_applied_once(tmp_path) -> None:
    make_mnist_like(tmp_path, "MNIST", n_train=20, n_test=10)
    dm = MNISTDataModule(data_dir=str(tmp_path), val_size=5, batch_size=4)
    dm.setup()
    loaders = (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader())
    x = torch.cat([x for loader in loaders for x, _ in loader])
    assert x.min() == -1.0 and x.max() == 1.0  # Normalize(0.5, 0.5) of [0, 1] pixels
    assert torch.equal(dm.sample("test", 3)[0], dm.encode(dm.splits["test"][0][:3]))


@pytest.mark.parametrize("batches_per_gather", [1, 3, 100])
@pytest.mark.parametrize("loader", ["tensors", "torch"])
def test_batches_encoded_as_gathered_equal_encoding_up_front(
    tmp_path, batches_per_gather, loader
) -> None:
    """Bit for bit, whatever the gather size (a batch, a chunk, the epoch) or the loader."""
    make_mnist_like(tmp_path, "MNIST", n_train=50, n_test=10)
    dm = MNISTDataModule(
        data_dir=str(tmp_path), val_size=10, batch_size=4, mean=0.1307, std=0.3081, loader=loader
    )
    dm.setup()
    up_front = dm.encode(dm.splits["train"][0])
    batches = dm.train_dataloader()
    batches.batches_per_gather = batches_per_gather
    order = batches.sampler.indices()
    gathered = torch.cat([x for x, _ in batches])
    assert gathered.dtype == torch.float32
    assert torch.equal(gathered, up_front[order])
    assert torch.equal(
        torch.cat([x for x, _ in dm.val_dataloader()]), dm.encode(dm.splits["val"][0])
    )


def test_missing_mnist_names_every_expected_file(tmp_path) -> None:
    dm = MNISTDataModule(data_dir=str(tmp_path))
    with pytest.raises(DataError) as err:
        dm.setup()
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "data.data_dir"):
        assert name in str(err.value)


def test_truncated_mnist_file_is_reported(tmp_path) -> None:
    make_mnist_like(tmp_path, "MNIST", n_train=20, n_test=10)
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="truncated"):
        MNISTDataModule(data_dir=str(tmp_path), val_size=5).setup()


def test_corrupt_gzip_is_reported(tmp_path) -> None:
    make_mnist_like(tmp_path, "MNIST", n_train=20, n_test=10)
    path = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(DataError, match="corrupt"):
        MNISTDataModule(data_dir=str(tmp_path), val_size=5).setup()


def _splits(dm: MNISTDataModule) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    dm.setup()
    return dm.splits


def test_decoded_mnist_files_are_cached_and_refreshed(tmp_path) -> None:
    """The second run reads the decoded copies (same splits, bit for bit); a replaced file
    is decoded afresh; a damaged copy or an unwritable cache only costs the decoding."""
    make_mnist_like(tmp_path / "data", "MNIST", n_train=40, n_test=10)
    cache = tmp_path / "cache"
    first = _splits(
        MNISTDataModule(data_dir=str(tmp_path / "data"), val_size=8, cache_dir=str(cache))
    )
    copies = sorted(p.name for p in (cache / "idx").iterdir())
    assert len(copies) == 4 and all(name.endswith(".npy") for name in copies)
    uncached = _splits(MNISTDataModule(data_dir=str(tmp_path / "data"), val_size=8))
    for name in ("train", "val", "test"):
        assert torch.equal(first[name][0], uncached[name][0])
        assert torch.equal(first[name][1], uncached[name][1])

    def module() -> MNISTDataModule:
        return MNISTDataModule(data_dir=str(tmp_path / "data"), val_size=8, cache_dir=str(cache))

    images = next((cache / "idx").glob("t10k-images-*.npy"))
    images.write_bytes(b"not an array")  # damaged: decoded again
    assert torch.equal(_splits(module())["test"][0], first["test"][0])
    # A replaced data file: new content, so a new copy and the new pixels.
    make_mnist_like(tmp_path / "data", "MNIST", n_train=40, n_test=12)
    assert len(_splits(module())["test"][0]) == 12
    assert len(list((cache / "idx").glob("t10k-images-*.npy"))) == 2
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache folder would go")
    dm = MNISTDataModule(data_dir=str(tmp_path / "data"), val_size=8, cache_dir=str(blocked))
    assert len(_splits(dm)["test"][0]) == 12


@pytest.mark.parametrize("archive", [False, True])
def test_cifar10_folder_and_archive(tmp_path, archive) -> None:
    make_cifar_like(tmp_path, per_batch=6, archive=archive)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), val_size=5, batch_size=4)
    dm.setup()
    x, y = dm.splits["train"]
    assert x.shape == (25, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    batch, _ = next(iter(dm.train_dataloader()))
    assert batch.dtype == torch.float32 and batch.min() >= 0.0 and batch.max() <= 1.0
    assert dm.splits["test"][0].shape == (6, 3, 32, 32)
    assert dm.class_names[0] == "airplane"


def test_cifar10_normalises_each_channel_of_each_batch(tmp_path) -> None:
    make_cifar_like(tmp_path, per_batch=6)
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    dm = CIFAR10DataModule(data_dir=str(tmp_path), val_size=5, batch_size=4, mean=mean, std=std)
    dm.setup()
    raw = dm.splits["test"][0].float() / 255
    expected = (raw - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    batches = torch.cat([x for x, _ in dm.test_dataloader()])
    assert torch.allclose(batches, expected)


def test_missing_cifar10_says_where(tmp_path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py"):
        CIFAR10DataModule(data_dir=str(tmp_path)).setup()


def test_cifar10_rejects_pickles_that_run_code(tmp_path) -> None:
    make_cifar_like(tmp_path, per_batch=4)

    class Exploit:
        def __reduce__(self):
            return (print, ("pwned",))

    import pickle

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(DataError, match="not allowed"):
        CIFAR10DataModule(data_dir=str(tmp_path), val_size=5).setup()


def test_sine_data() -> None:
    dm = SineDataModule(n=2000, test_size=0.2, val_size=0.1, seed=0)
    dm.setup()
    x, y = dm.splits["train"]
    assert {k: len(v[0]) for k, v in dm.splits.items()} == {"train": 1440, "val": 160, "test": 400}
    assert x.shape == (1440, 1) and torch.allclose(y, torch.sin(x))
    assert x.min() >= -torch.pi and x.max() <= torch.pi


def test_linear_data_follows_its_parameters() -> None:
    dm = LinearDataModule(w=(2.0, -3.4), b=4.2, noise=0.01, n=1000, seed=0)
    dm.setup()
    x, y = dm.splits["train"]
    residual = y.squeeze(1) - (x @ torch.tensor([2.0, -3.4]) + 4.2)
    assert x.shape[1] == 2 and residual.std() == pytest.approx(0.01, rel=0.2)
    again = LinearDataModule(seed=0)
    again.setup()
    assert torch.equal(again.splits["test"][0], dm.splits["test"][0])


def test_augmented_training_resumes_exactly(tmp_path, tiny_data_dir) -> None:
    """The augmentation draws are a function of (seed, epoch, rank): nothing to save."""
    from litnets import training
    from litnets.config import compose

    augment = ["data.augment.hflip=true", "data.augment.crop_padding=2"]
    straight = train_tiny_mnist(tmp_path / "a", tiny_data_dir, *augment, "trainer.max_epochs=4")
    train_tiny_mnist(tmp_path / "b", tiny_data_dir, *augment, "trainer.max_epochs=2")
    resume = compose([f"resume={tmp_path / 'b'}"], output_dir=str(tmp_path / "unused"))
    resumed = training.train(resume, overrides=["trainer.max_epochs=4"])
    assert resumed["test"] == straight["test"]
    assert same_final_weights(tmp_path / "a", tmp_path / "b")
