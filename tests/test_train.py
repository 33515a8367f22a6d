"""The real ``scripts/train.py``, run as a user runs it: defaults, every pair, every group."""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import check_ok, read_metrics, run_dirs, run_script
from litnets.quiet import SRUN_HINT, quiet_lightning
from litnets.record import git_state


def scalar_tags(run_dir: Path) -> set[str]:
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return set(events.Tags()["scalars"])


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory) -> tuple[Path, str]:
    """``python scripts/train.py`` with no arguments: the README's first command."""
    log_dir = tmp_path_factory.mktemp("iris-default")
    result = run_script("train.py", log_dir=log_dir)
    check_ok(result)
    (run_dir,) = run_dirs(log_dir)
    return run_dir, result.stdout


def test_default_run_reaches_the_tutorial_accuracy(iris_run) -> None:
    run_dir, _ = iris_run
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["data"] == "IrisDataModule"
    assert metrics["test"]["test/acc"] >= 0.96
    assert metrics["epochs"] == 1000
    assert 0 < metrics["fit_time_s"] <= metrics["wall_time_s"]  # timed, whatever the machine


def test_metrics_json_records_the_run(iris_run) -> None:
    run_dir, _ = iris_run
    metrics = read_metrics(run_dir)
    assert set(metrics) >= {"test", "best_val", "epochs", "wall_time_s", "checkpoints", "seed"}
    assert metrics["best_val"]["val/acc"] == metrics["best_val"]["val/acc_best"]
    assert 0 < metrics["test"]["test/loss"] < 1
    assert Path(metrics["checkpoints"]["best"]).is_file()
    assert Path(metrics["checkpoints"]["last"]).name == "last.ckpt"
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_the_run_records_its_environment(iris_run) -> None:
    run_dir, _ = iris_run
    env = read_metrics(run_dir)["environment"]
    assert env["command"] == "litnets train"  # scripts/train.py is `litnets train`
    assert env["python"].count(".") == 2
    for package in ("litnets", "torch", "lightning", "hydra-core", "torchmetrics", "torchvision"):
        assert env["versions"][package], package
    assert (env["precision"], env["device"]) == ("32-true", "cpu")
    assert len(env["git"]["commit"]) == 40 and isinstance(env["git"]["dirty"], bool)


def test_git_state_names_the_commit_and_whether_the_checkout_changed(tmp_path) -> None:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(tmp_path), *args], capture_output=True, text=True)
        return done.stdout.strip()

    assert git_state(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    assert git_state(tmp_path) is None  # no commit yet
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    assert git_state(tmp_path) == {"commit": git("rev-parse", "HEAD"), "dirty": False}
    (tmp_path / "b.txt").write_text("b")  # untracked counts as a change
    assert git_state(tmp_path)["dirty"] is True


def test_summary_says_where_things_are(iris_run) -> None:
    run_dir, stdout = iris_run
    assert str(run_dir) in stdout
    assert "test/acc=" in stdout
    assert "tensorboard --logdir" in stdout


def test_tensorboard_has_every_curve(iris_run) -> None:
    run_dir, _ = iris_run
    tags = scalar_tags(run_dir)
    expected = {"train/loss", "train/acc", "train/loss_step", "val/loss", "val/acc"}
    expected |= {"val/acc_best", "test/loss", "test/acc", "lr-Adam"}
    assert expected <= tags, expected - tags


def test_every_model_and_data_pair_trains(tmp_path, tiny_data_dir) -> None:
    """One smoke fit per sensible pair, through Hydra multirun (one process per group)."""
    common = ["trainer.max_epochs=2", "logger=none", "trainer.enable_model_summary=false"]
    sweeps = [
        ["data=mnist,fashion_mnist,cifar10", "model=mlp,softmax,cnn", "data.val_size=16"],
        ["data=iris", "model=mlp,softmax"],
        ["data=sine", "model=mlp,poly,linear", "trainer.check_val_every_n_epoch=1"],
        ["data=linear", "model=mlp,linear"],
    ]
    expected = 9 + 2 + 3 + 2
    for sweep in sweeps:
        overrides = ["-m", *sweep, *common, f"paths.data_dir={tiny_data_dir}"]
        check_ok(run_script("train.py", *overrides, log_dir=tmp_path))
    runs = [read_metrics(d) for d in run_dirs(tmp_path)]
    assert len(runs) == expected
    pairs = {(m["data"], m["model"]) for m in runs}
    assert len(pairs) == expected
    for metrics in runs:
        assert metrics["status"] == "completed"
        assert metrics["epochs"] == 2
        key = "test/acc" if metrics["task"] == "classification" else "test/mse"
        assert key in metrics["test"]


def test_every_group_overridden_on_the_command_line(tmp_path) -> None:
    run_dir = tmp_path / "my-run"
    overrides = [
        "data=iris",
        "model=softmax",
        "optimizer=sgd",
        "optimizer.lr=0.5",
        "scheduler=cosine",
        "trainer=cpu",
        "trainer.max_epochs=30",
        "logger=csv",
        "callbacks=early_stopping",
        "seed=7",
        f"hydra.run.dir={run_dir}",
    ]
    result = run_script("train.py", *overrides, log_dir=tmp_path)
    check_ok(result)
    metrics = read_metrics(run_dir)
    assert metrics["model"] == "SoftmaxRegression"
    assert metrics["seed"] == 7
    assert (run_dir / "csv" / "metrics.csv").is_file()
    assert metrics["logs"] == {"csv": str(run_dir / "csv")}
    assert f"CSV          {run_dir / 'csv' / 'metrics.csv'}" in result.stdout
    assert "tensorboard --logdir" not in result.stdout  # no TensorBoard logger, no hint
    config = (run_dir / ".hydra" / "config.yaml").read_text()
    for text in ("CosineAnnealingLR", "torch.optim.SGD", "EarlyStopping", "accelerator: cpu"):
        assert text in config


def test_missing_mnist_is_one_clear_message(tmp_path) -> None:
    result = run_script("train.py", "data=mnist", f"paths.data_dir={tmp_path}", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("litnets: error: MNIST files not found")
    assert str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz") in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_groups(tmp_path) -> None:
    result = run_script("train.py", "--help", log_dir=tmp_path)
    check_ok(result)
    for line in (
        "data: cifar10, csv, fashion_mnist, image_folder, iris, linear, mnist, sine",
        "model: cnn, linear",
    ):
        assert line in result.stdout
    assert "scheduler: cosine, default, multistep, none, onecycle, plateau, step" in result.stdout


def test_summary_lines_name_what_was_learned() -> None:
    from litnets.training import format_summary

    summary = {"status": "completed", "wall_time_s": 1.0, "epochs": 2, "global_steps": 4}
    summary |= {"run_dir": "/r", "learned": {"equation": "y = 0.1 + 0.8*x", "coefficients": []}}
    lines = format_summary(summary).splitlines()
    assert "  learned      equation: y = 0.1 + 0.8*x" in lines
    assert not any("coefficients" in line for line in lines)


def test_progress_bar_shows_the_loss_the_task_already_read(tmp_path) -> None:
    """The bar shows the step loss the task read at the logging interval: a Python float."""
    import lightning as L

    from litnets import training
    from litnets.callbacks.progress import ProgressBar
    from litnets.config import compose

    class Peek(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            (bar,) = [c for c in trainer.callbacks if isinstance(c, ProgressBar)]
            self.shown = bar.get_metrics(trainer, pl_module)
            self.read = pl_module.last_step_loss

    peek = Peek()
    overrides = ["trainer.max_epochs=12", "trainer.log_every_n_steps=5", "pictures=false"]
    training.train(compose(overrides, output_dir=str(tmp_path)), extra_callbacks=[peek])
    assert isinstance(peek.read, float)
    assert peek.shown["loss"] == f"{peek.read:.4g}"
    assert "v_num" not in peek.shown


@pytest.mark.parametrize("in_allocation", [False, True])
def test_lightnings_srun_hint_is_shown_only_inside_a_slurm_allocation(
    monkeypatch, in_allocation
) -> None:
    """Where no job runs, srun's presence means nothing; inside a job, forgetting it hangs."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    if in_allocation:
        monkeypatch.setenv("SLURM_JOB_ID", "42")
    message = f"{SRUN_HINT}. HINT: prepend your python command with `srun`"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn(message, UserWarning, stacklevel=1)
        warnings.warn(message, UserWarning, stacklevel=1)  # outside a run: the caller's filters
    assert len(caught) == 1 + in_allocation
