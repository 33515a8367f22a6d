"""Using a trained model: eval, predict, export, and safe checkpoint loading (seed 004)."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import check_ok, read_metrics, run_dirs, run_script
from litnets.inference import restore
from litnets.models.saved import load as load_saved


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("iris")
    check_ok(run_script("train.py", "trainer.max_epochs=200", log_dir=log_dir))
    (run_dir,) = run_dirs(log_dir)
    return run_dir


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, tiny_data_dir) -> Path:
    log_dir = tmp_path_factory.mktemp("mnist")
    overrides = ["data=mnist", "model=cnn", f"paths.data_dir={tiny_data_dir}", "data.val_size=16"]
    check_ok(run_script("train.py", *overrides, "trainer.max_epochs=3", log_dir=log_dir))
    (run_dir,) = run_dirs(log_dir)
    return run_dir


def only_run(log_dir: Path, task: str) -> Path:
    (run_dir,) = [d for d in run_dirs(log_dir) if f"/{task}/" in str(d)]
    return run_dir


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("which", ["best", "last", "run dir"])
def test_eval_reproduces_the_training_test_metrics(tmp_path, iris_run, which) -> None:
    trained = read_metrics(iris_run)
    ckpt = iris_run if which == "run dir" else iris_run / "checkpoints" / f"{which}.ckpt"
    result = run_script("eval.py", f"ckpt_path={ckpt}", log_dir=tmp_path)
    check_ok(result)
    evaluated = read_metrics(only_run(tmp_path, "eval"))
    assert "test/acc=" in result.stdout
    if which != "last":
        assert evaluated["test"] == trained["test"]  # training tested best.ckpt
    else:  # last.ckpt: the accuracy its own weights give on the test split, worked out here
        restored = restore(str(ckpt))
        x, y = restored.datamodule.sample("test", 10_000)
        with torch.no_grad():
            right = (restored.task(x).argmax(dim=1) == y).sum().item()
        assert evaluated["test"]["test/acc"] == pytest.approx(right / len(y), abs=1e-7)
        assert evaluated["checkpoint"] == str(ckpt)  # eval used last.ckpt, not best.ckpt


def test_predict_on_test_samples(tmp_path, iris_run) -> None:
    args = (f"ckpt_path={iris_run}", "input=test", "num_samples=5", "top_k=2")
    result = run_script("predict.py", *args, log_dir=tmp_path)
    check_ok(result)
    rows = read_rows(only_run_dir(tmp_path) / "predictions.csv")
    assert len(rows) == 5
    assert set(rows[0]) == {"input", "prediction", "probability", "top_k", "true"}
    assert rows[0]["prediction"] in {"setosa", "versicolor", "virginica"}
    assert sum(r["prediction"] == r["true"] for r in rows) >= 4
    assert "prediction=" in result.stdout


def only_run_dir(log_dir: Path) -> Path:
    (run_dir,) = [p.parent for p in log_dir.rglob("predictions.csv")]
    return run_dir


def test_predict_on_csv_rows(tmp_path, iris_run) -> None:
    table = tmp_path / "flowers.csv"
    table.write_text("sepal_l,sepal_w,petal_l,petal_w\n5.1,3.5,1.4,0.2\n6.7,3.0,5.2,2.3\n")
    result = run_script("predict.py", f"ckpt_path={iris_run}", f"input={table}", log_dir=tmp_path)
    check_ok(result)
    rows = read_rows(only_run_dir(tmp_path) / "predictions.csv")
    assert [r["prediction"] for r in rows] == ["setosa", "virginica"]
    assert rows[0]["input"] == "flowers.csv:2"


def test_predict_on_image_files_of_any_size(tmp_path, mnist_run) -> None:
    folder = tmp_path / "digits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (56, 40, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8)).save(folder / "b.jpg")
    for target in (folder, folder / "a.png"):
        result = run_script(
            "predict.py",
            f"ckpt_path={mnist_run}",
            f"input={target}",
            log_dir=tmp_path / target.name,
        )
        check_ok(result)
    rows = read_rows(only_run_dir(tmp_path / "digits") / "predictions.csv")
    assert [r["input"] for r in rows] == ["a.png", "b.jpg"]
    assert all(r["prediction"] in [str(d) for d in range(10)] for r in rows)
    assert all(0.0 <= float(r["probability"]) <= 1.0 for r in rows)


def test_export_reloads_with_identical_outputs(tmp_path, mnist_run) -> None:
    result = run_script("export.py", f"ckpt_path={mnist_run}", log_dir=tmp_path)
    check_ok(result)
    (out,) = [p.parent for p in tmp_path.rglob("model.json")]
    exported = load_saved(out)
    original = restore(str(mnist_run)).model.eval()
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = original(x)
        assert torch.equal(exported(x), expected)
        program = torch.export.load(out / "model.pt2")
        assert torch.allclose(program.module()(x), expected, atol=1e-5)
    assert not any("lightning" in type(m).__module__ for m in exported.modules())
    loader = (  # a fresh process: the export needs torch and litnets.models, nothing more
        "import sys; from litnets.models.saved import load; "
        f"load({str(out)!r}); print(sorted({{'lightning', 'hydra', 'omegaconf'}} & set(sys.modules)))"
    )
    loaded = subprocess.run([sys.executable, "-c", loader], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_missing_checkpoint(tmp_path, script) -> None:
    result = run_script(script, f"ckpt_path={tmp_path}/nope.ckpt", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"litnets: error: checkpoint not found: {tmp_path}/nope.ckpt"


def test_corrupt_checkpoint(tmp_path, iris_run) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes((iris_run / "checkpoints" / "best.ckpt").read_bytes()[:500])
    result = run_script("eval.py", f"ckpt_path={bad}", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"litnets: error: {bad} is not a readable checkpoint")
    assert len(result.stderr.strip().splitlines()) == 1


def test_checkpoint_of_another_model_is_one_line(tmp_path, iris_run) -> None:
    ckpt = iris_run / "checkpoints" / "last.ckpt"
    args = (f"ckpt_path={ckpt}", "model.hidden_sizes=[20]", "trainer.max_epochs=300")
    result = run_script("train.py", *args, log_dir=tmp_path)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("litnets: error:")
    assert "different model or dataset" in message
    assert "(10, 4) vs (20, 4)" in message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("top_k=0", "top_k must be a positive integer, got 0 (int)"),
        ("num_samples=-3", "num_samples must be a positive integer, got -3 (int)"),
    ],
)
def test_bad_predict_options_are_one_line(tmp_path, iris_run, override, message) -> None:
    result = run_script("predict.py", f"ckpt_path={iris_run}", override, log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"litnets: error: {message}"


def test_inference_on_a_gpu_that_is_not_there_is_a_config_error(monkeypatch) -> None:
    from litnets import inference
    from litnets.config import compose
    from litnets.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = compose(["ckpt_path=unused", "accelerator=gpu"], "eval")
    with pytest.raises(ConfigError, match=r"accelerator=gpu, but no CUDA GPU .* accelerator=auto"):
        inference.inference_trainer(cfg)


class RunsACommand:
    """Pickles as a call of os.system: what a malicious checkpoint would carry."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def booby_trapped(path: Path, payload: object) -> Path:
    """A checkpoint shaped like litnets' own, with ``payload`` inside."""
    config = {"data": {"_target_": "litnets.data.iris.IrisDataModule"}}
    torch.save({"state_dict": {}, "hyper_parameters": {"config": config}, "extra": payload}, path)
    return path


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_a_checkpoint_that_would_run_code_is_refused(tmp_path, script) -> None:
    marker = tmp_path / "the-payload-ran"
    bad = booby_trapped(tmp_path / "evil.ckpt", RunsACommand(marker))
    result = run_script(script, f"ckpt_path={bad}", log_dir=tmp_path / "logs")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"litnets: error: {bad} holds Python objects")
    assert "posix.system" in line and "refused" in line
    assert not marker.exists()  # the payload never ran
    assert not [p for p in (tmp_path / "logs").rglob("*") if p.is_file()]


def test_a_checkpoint_holding_an_unexpected_class_is_refused(tmp_path) -> None:
    import argparse

    odd = booby_trapped(tmp_path / "odd.ckpt", argparse.Namespace(anything=1))
    result = run_script("eval.py", f"ckpt_path={odd}", log_dir=tmp_path / "logs")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"litnets: error: {odd} holds Python objects")
    assert "argparse.Namespace" in result.stderr
