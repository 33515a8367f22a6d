"""The README's "Your own data" examples run as written, from raw files to predictions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import check_ok, read_metrics, readme_block


def run_block(tag: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITNETS_", "HYDRA_"))}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return subprocess.run(
        ["bash", "-e"], input=readme_block(tag), cwd=cwd, env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.slow
def test_the_table_example(tmp_path) -> None:
    result = run_block("own-table", tmp_path)
    check_ok(result)
    metrics = read_metrics(tmp_path / "runs" / "cancer")
    assert metrics["task"] == "classification" and metrics["test"]["test/acc"] >= 0.93
    assert "litnets: accuracy 0.9" in result.stdout  # predict on the raw rows, labels included
    assert list((tmp_path / "logs" / "export").rglob("model.json"))


@pytest.mark.slow
def test_the_image_folder_example(tmp_path) -> None:
    result = run_block("own-images", tmp_path)
    check_ok(result)
    metrics = read_metrics(tmp_path / "runs" / "digits")
    assert metrics["model"] == "CNN" and metrics["test"]["test/acc"] >= 0.9
    predictions = read_metrics(next((tmp_path / "logs" / "predict").rglob("metrics.json")).parent)
    guesses = [row["prediction"] for row in predictions["predictions"]]
    assert len(guesses) == 179 and guesses.count("7") / len(guesses) >= 0.9
