"""``data=image_folder``: your own images in class folders, decoded once, cached, streamed."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import check_ok, make_image_folder, read_metrics, run_dirs, run_script
from litnets.data import folder as folder_module
from litnets.data.folder import ImageFolderDataModule
from litnets.errors import ConfigError, DataError


def images(root, **options) -> ImageFolderDataModule:
    options = {"val_size": 0.25, "test_size": 0.25, "on_device": False, **options}
    return ImageFolderDataModule(root=str(root), **options)


def test_a_folder_of_class_folders_becomes_stratified_splits(tmp_path) -> None:
    data = images(make_image_folder(tmp_path / "shapes", per_class=16))
    data.setup()
    assert data.class_names == ["circle", "cross", "dot"]
    assert data.input_shape == (1, 16, 16)  # grey images: one channel, their own size
    sizes = {name: len(y) for name, (_, y) in data.splits.items()}
    assert sizes == {"train": 27, "val": 9, "test": 12}
    for _, y in data.splits.values():  # stratified: every class in every split, equally
        assert torch.bincount(y, minlength=3).tolist() == [len(y) // 3] * 3
    x, _ = data.splits["train"]
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-2  # training statistics


def test_train_and_test_folders_are_kept(tmp_path) -> None:
    make_image_folder(tmp_path / "train", per_class=10)
    make_image_folder(tmp_path / "test", per_class=4, seed=1)
    data = images(tmp_path)
    data.setup()
    assert len(data.splits["test"][1]) == 12
    assert len(data.splits["train"][1]) + len(data.splits["val"][1]) == 30


def test_mixed_sizes_need_an_image_size_and_are_resized(tmp_path) -> None:
    root = make_image_folder(tmp_path / "mixed", per_class=6)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "dot" / "big.png")
    with pytest.raises(
        ConfigError, match=r"differ in size \(16×16: 18, 30×40: 1\).*data.image_size"
    ):
        images(root).check_available()
    data = images(root, image_size=[20, 20])
    data.setup()
    assert data.input_shape == (3, 20, 20)  # one RGB image: colour for all
    assert data.splits["train"][0].shape[1:] == (3, 20, 20)


def test_unreadable_files_are_skipped_and_named(tmp_path, capfd) -> None:
    root = make_image_folder(tmp_path / "bad", per_class=8)
    (root / "cross" / "broken.png").write_bytes(b"\x89PNG not really")
    good = (root / "dot" / "000.png").read_bytes()
    (root / "dot" / "truncated.png").write_bytes(good[: len(good) // 2])
    data = images(root)
    data.setup()
    assert sum(len(y) for _, y in data.splits.values()) == 24
    err = capfd.readouterr().err
    assert "skipping 2 unreadable image file(s)" in err and "cross/broken.png" in err
    with pytest.raises(DataError, match="2 unreadable image file"):
        images(root, on_bad_image="error").check_available()


def test_decoded_images_are_cached_until_a_file_changes(tmp_path, monkeypatch) -> None:
    root = make_image_folder(tmp_path / "cached", per_class=6)
    first = images(root, cache_dir=str(tmp_path / "cache"))
    first.setup()
    calls = []
    real_decode = folder_module.decode
    monkeypatch.setattr(folder_module, "decode", lambda *a: calls.append(a) or real_decode(*a))
    again = images(root, cache_dir=str(tmp_path / "cache"))
    again.setup()
    assert calls == []  # nothing decoded: the cache served it
    assert all(torch.equal(first.splits[k][0], again.splits[k][0]) for k in first.splits)
    changed = root / "cross" / "003.png"
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    images(root, cache_dir=str(tmp_path / "cache")).setup()
    assert len(calls) == 18  # a changed folder is decoded again


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_first_decoding_shows_its_progress_on_a_terminal(tmp_path, monkeypatch) -> None:
    root = make_image_folder(tmp_path / "shown", per_class=6)
    monkeypatch.setattr(sys, "stderr", Terminal())
    images(root).setup()
    shown = sys.stderr.getvalue()
    assert "litnets: data: reading image headers" in shown and "/18 [" in shown  # of 18 files
    assert "litnets: data: decoding images" in shown
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file: no bar
    images(root).setup()
    assert sys.stderr.getvalue() == ""


def test_the_dataloader_path_streams_the_same_batches(tmp_path) -> None:
    """loader=torch decodes nothing up front, and serves exactly the tensor path's batches."""
    root = make_image_folder(tmp_path / "stream", per_class=16)
    tensors = images(root, batch_size=5)
    streamed = images(root, batch_size=5, loader="torch", num_workers=2)
    streamed.setup()
    assert streamed.splits == {}  # nothing decoded into memory
    for split in ("train", "val", "test"):
        loader = {"train": "train_dataloader", "val": "val_dataloader", "test": "test_dataloader"}[
            split
        ]
        ours = list(getattr(tensors, loader)())
        theirs = list(getattr(streamed, loader)())
        assert len(ours) == len(theirs)
        for (x, y), (x2, y2) in zip(ours, theirs, strict=True):
            assert torch.equal(y, y2) and torch.allclose(x, x2, atol=1e-6)
    assert streamed.num_samples("train") == 27
    assert streamed.sample("test", 4)[0].shape == (4, 1, 16, 16)


def test_every_image_model_trains_and_predicts_new_files(tmp_path) -> None:
    root = make_image_folder(tmp_path / "shapes", per_class=20)
    args = ["-m", "data=image_folder", f"data.root={root}", "model=mlp,cnn,softmax"]
    args += [
        "trainer.max_epochs=8",
        "data.batch_size=8",
        "optimizer.lr=0.01",
        "data.cache_dir=null",
    ]
    check_ok(run_script("train.py", *args, log_dir=tmp_path / "logs"))
    runs = run_dirs(tmp_path / "logs")
    assert sorted(read_metrics(r)["model"] for r in runs) == ["CNN", "MLP", "SoftmaxRegression"]
    assert all(read_metrics(r)["test"]["test/acc"] >= 0.8 for r in runs)
    new = tmp_path / "new"
    new.mkdir()
    picture = np.full((48, 40, 3), 30, dtype=np.uint8)  # another size, colour: converted
    picture[32:48] = 230  # the "dot" band
    Image.fromarray(picture).save(new / "mine.jpg")
    cnn = next(r for r in runs if read_metrics(r)["model"] == "CNN")
    result = run_script("predict.py", f"ckpt_path={cnn}", f"input={new}", log_dir=tmp_path / "p")
    check_ok(result)
    (prediction,) = read_metrics(run_dirs(tmp_path / "p")[0])["predictions"]
    assert prediction["prediction"] == "dot"
    saved = torch.load(cnn / "checkpoints" / "best.ckpt", weights_only=True)
    stored = saved["ImageFolderDataModule"]["preprocessing"]
    assert (stored["image_size"], stored["channels"], stored["classes"]) == (
        [16, 16],
        1,
        ["circle", "cross", "dot"],
    )


@pytest.mark.slow
def test_mnist_as_png_files_trains_an_mlp(tmp_path, real_data_dir) -> None:
    """Real images: 6 000 MNIST digits exported as PNG class folders, an MLP, 3 epochs."""
    from litnets.data.mnist import MNISTDataModule, read_idx

    mnist = MNISTDataModule(data_dir=str(real_data_dir))
    for split, prefix, count in (("train", "train", 6000), ("test", "t10k", 1000)):
        pixels = read_idx(mnist.locate(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(mnist.locate(f"{prefix}-labels-idx1-ubyte"))
        for i in range(count):
            folder = tmp_path / "mnist" / split / str(labels[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[i]).save(folder / f"{i:05d}.png")
    args = [
        "data=image_folder",
        f"data.root={tmp_path / 'mnist'}",
        "model=mlp",
        "trainer.max_epochs=3",
    ]
    check_ok(run_script("train.py", *args, log_dir=tmp_path / "logs"))
    metrics = read_metrics(run_dirs(tmp_path / "logs")[0])
    assert metrics["test"]["test/acc"] >= 0.90
