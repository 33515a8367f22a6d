"""Batches land on the training device: splits are copied there once, not batch by batch.

On a machine without CUDA the ``meta`` device stands in for the GPU in the datamodule tests
(it has shapes and devices but no data), so the placement logic is checked everywhere; the
tests marked ``cuda`` train on a real GPU and only run where one is present.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from conftest import make_mnist_like
from litnets.data.augment import BatchAugment
from litnets.data.mnist import MNISTDataModule
from litnets.models.mlp import MLP
from litnets.tasks.classification import ClassificationTask

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (runs on the GPU host)")
ACCELERATOR = torch.device("cuda") if HAS_CUDA else torch.device("meta")


def on_trainer(datamodule: L.LightningDataModule, device: torch.device) -> None:
    """Attach the parts of a Trainer that a datamodule reads: its device and rank."""
    strategy = SimpleNamespace(root_device=device)
    datamodule.trainer = SimpleNamespace(
        strategy=strategy, global_rank=0, world_size=1, overfit_batches=0
    )


def every_batch(datamodule: L.LightningDataModule) -> list[torch.Tensor]:
    loaders = (datamodule.train_dataloader(), datamodule.val_dataloader())
    return [t for loader in (*loaders, datamodule.test_dataloader()) for b in loader for t in b]


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist_like(tmp_path, "MNIST", n_train=40, n_test=20)


def test_splits_and_batches_live_on_the_training_device(mnist_dir) -> None:
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=10, batch_size=8)
    on_trainer(dm, ACCELERATOR)
    dm.setup("fit")
    assert {t.device.type for split in dm.splits.values() for t in split} == {ACCELERATOR.type}
    batches = every_batch(dm)
    assert len(batches) == 2 * (4 + 2 + 3)  # (inputs, targets) × (30/8, 10/8, 20/8 batches)
    assert {t.device.type for t in batches} == {ACCELERATOR.type}


@pytest.mark.parametrize("options", [{"on_device": False}, {"loader": "torch"}])
def test_host_memory_when_asked_or_read_by_a_dataloader(mnist_dir, options) -> None:
    """``on_device=false`` keeps data on the host; DataLoader workers read host memory."""
    dm = MNISTDataModule(data_dir=str(mnist_dir), val_size=10, batch_size=8, **options)
    on_trainer(dm, ACCELERATOR)
    dm.setup("fit")
    assert {t.device.type for t in every_batch(dm)} == {"cpu"}


def test_a_batch_already_on_the_device_is_not_walked_again() -> None:
    task = ClassificationTask(MLP((4,), 3, hidden_sizes=[5]), torch.optim.SGD, num_classes=3)
    batch = (torch.rand(2, 4), torch.tensor([0, 2]))
    assert task.transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = task.transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert [t.device.type for t in moved] == ["meta", "meta"]


def test_augmentation_fill_is_copied_to_a_device_once() -> None:
    augment = BatchAugment(crop_padding=1, fill=(-1.0,))
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        augment(torch.rand(4, 1, 5, 5), generator)
    assert list(augment._fill_on) == [(torch.device("cpu"), torch.float32)]
    augment.fill = (-2.0,)  # the datamodule sets the encoded black before training
    assert augment(torch.zeros(64, 1, 2, 2), generator).min() == -2.0


class BatchDevices(L.Callback):
    """Records the device of every training and validation batch the task receives."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.root = ""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.root = str(trainer.strategy.root_device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.update(str(t.device) for t in batch)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dl_idx=0) -> None:
        self.seen.update(str(t.device) for t in batch)


def train_with_probe(run_dir: Path, data_dir: Path, *overrides: str) -> tuple[dict, BatchDevices]:
    from litnets import training
    from litnets.config import compose

    cfg = compose(
        [
            "data=mnist", f"paths.data_dir={data_dir.parent}", "data.val_size=8",
            "data.batch_size=8", "trainer.max_epochs=2", "logger=none", "pictures=false",
            "trainer.enable_model_summary=false", *overrides,
        ],
        output_dir=str(run_dir),
    )  # fmt: skip
    probe = BatchDevices()
    return training.train(cfg, extra_callbacks=[probe]), probe


def test_training_batches_are_on_the_root_device_cpu(tmp_path, mnist_dir) -> None:
    summary, probe = train_with_probe(tmp_path / "run", mnist_dir / "MNIST", "trainer=cpu")
    assert probe.seen == {"cpu"} == {probe.root}
    assert summary["status"] == "completed"


@needs_cuda
@pytest.mark.parametrize(
    "overrides",
    [
        (),
        ("trainer.precision=bf16-mixed", "float32_matmul_precision=high"),
        ("data.augment.hflip=true", "data.augment.crop_padding=2"),
        ("compile=true",),
    ],
)
def test_gpu_training_keeps_batches_on_the_gpu(tmp_path, mnist_dir, overrides) -> None:
    summary, probe = train_with_probe(
        tmp_path / "run", mnist_dir / "MNIST", "trainer=gpu", *overrides
    )
    assert probe.root == "cuda:0"
    assert probe.seen == {"cuda:0"}
    assert summary["status"] == "completed"
    assert 0.0 <= summary["test"]["test/acc"] <= 1.0
