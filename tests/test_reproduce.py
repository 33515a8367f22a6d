"""Each tutorial preset really trains to the tutorial's result (slow: minutes in all)."""

from __future__ import annotations

import pytest
import torch

from conftest import check_ok, read_metrics, run_dirs, run_script
from litnets.data.synthetic import SineDataModule

pytestmark = pytest.mark.slow


def train_preset(tmp_path, experiment: str, *overrides: str) -> dict:
    result = run_script("train.py", f"experiment={experiment}", *overrides, log_dir=tmp_path)
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path)
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    return metrics


def test_iris_mlp(tmp_path) -> None:
    metrics = train_preset(tmp_path, "iris_mlp")
    assert metrics["test"]["test/acc"] >= 0.96


def test_mnist_mlp(tmp_path, real_data_dir) -> None:
    metrics = train_preset(tmp_path, "mnist_mlp", f"paths.data_dir={real_data_dir}")
    assert metrics["epochs"] == 20
    assert metrics["test"]["test/acc"] >= 0.98


def test_mnist_ffn(tmp_path, real_data_dir) -> None:
    metrics = train_preset(tmp_path, "mnist_ffn", f"paths.data_dir={real_data_dir}")
    assert metrics["test"]["test/acc"] >= 0.97


def test_fashion_softmax(tmp_path, real_data_dir) -> None:
    metrics = train_preset(tmp_path, "fashion_softmax", f"paths.data_dir={real_data_dir}")
    assert metrics["epochs"] == 10
    assert metrics["test"]["test/acc"] >= 0.83


def test_linreg_recovers_w_and_b(tmp_path) -> None:
    metrics = train_preset(tmp_path, "linreg")
    w, b = metrics["learned"]["w"], metrics["learned"]["b"]
    assert w == pytest.approx([2.0, -3.4], abs=0.01)
    assert b == pytest.approx(4.2, abs=0.01)


def test_sine_poly_matches_least_squares(tmp_path) -> None:
    metrics = train_preset(tmp_path, "sine_poly")
    dm = SineDataModule(n=2000, test_size=0.2, val_size=0.1, seed=0)
    dm.setup()

    def powers(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x**0, x, x**2, x**3], dim=1).double()

    (x, y), (x_test, y_test) = dm.splits["train"], dm.splits["test"]
    coefficients = torch.linalg.lstsq(powers(x), y.double()).solution
    best_mse = ((powers(x_test) @ coefficients - y_test.double()) ** 2).mean().item()
    assert metrics["test"]["test/mse"] <= 1.05 * best_mse
    assert metrics["learned"]["equation"].startswith("y = ")
    assert "x^3" in metrics["learned"]["equation"]


def test_cifar10_cnn_runs_end_to_end(tmp_path, tiny_data_dir) -> None:
    """Real CIFAR-10 cannot be downloaded here: the full path runs on a generated archive."""
    metrics = train_preset(
        tmp_path,
        "cifar10_cnn",
        f"paths.data_dir={tiny_data_dir}",
        "data.val_size=20",
        "trainer.max_epochs=2",
    )
    assert metrics["model"] == "CNN"
    assert 0.0 <= metrics["test"]["test/acc"] <= 1.0
    assert metrics["global_steps"] == 2 * 2  # 80 training images in batches of 64
