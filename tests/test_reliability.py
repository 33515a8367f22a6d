"""Reliable runs: exact resume after a kill, determinism, divergence, one-line errors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SCRIPTS, check_ok, read_metrics, run_dirs, run_script

LONG_IRIS = ["trainer.max_epochs=2500", "pictures=false", "seed=11"]


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    return {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run the killed-and-resumed ones must match exactly."""
    log_dir = tmp_path_factory.mktemp("straight")
    check_ok(run_script("train.py", *LONG_IRIS, log_dir=log_dir))
    (run_dir,) = run_dirs(log_dir)
    return run_dir


def wait_until_training_is_under_way(log_dir: Path, process: subprocess.Popen) -> None:
    """Until last.ckpt has been saved twice (epochs 20 and 40): a condition, not a delay,
    so a loaded machine is not a failure; the run still has over 2 400 epochs to go."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        saved = list(log_dir.rglob("last.ckpt"))
        if saved:
            try:
                if torch.load(saved[0], weights_only=True)["epoch"] >= 39:
                    return
            except Exception:  # being written right now: look again
                pass
        time.sleep(0.1)
    raise AssertionError("the run did not get under way (or ended) within 300 s")


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_killed_run_resumes_to_exactly_the_same_result(
    tmp_path, straight_run, signum, exit_code
) -> None:
    env = {**os.environ, "LITNETS_LOG_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "train.py"), *LONG_IRIS],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_until_training_is_under_way(tmp_path, process)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert f"litnets: {signum.name}: finishing this epoch, saving last.ckpt" in stderr
    (run_dir,) = run_dirs(tmp_path)
    interrupted = read_metrics(run_dir)
    assert interrupted["status"] == "interrupted"
    assert interrupted["stopped_by"] == signum.name
    assert 0 < interrupted["epochs"] < 2500
    assert Path(interrupted["resume_from"]).name == "last.ckpt"
    saved = torch.load(interrupted["resume_from"], weights_only=True)
    assert saved["epoch"] == interrupted["epochs"] - 1  # saved at the stop, not the cadence

    log_lines = (run_dir / "train.log").read_text().count("\n")
    check_ok(run_script("train.py", f"resume={run_dir}", log_dir=tmp_path / "resume"))
    assert not list((tmp_path / "resume").iterdir()), "the resumed run stays in its own dir"
    assert (run_dir / "train.log").read_text().count("\n") > log_lines  # appended to
    (resumed_config,) = run_dir.glob(".hydra/resumed-*/overrides.yaml")
    assert f"resume={run_dir}" in resumed_config.read_text()
    resumed = read_metrics(run_dir)
    expected = read_metrics(straight_run)
    assert resumed["status"] == "completed"
    assert resumed["epochs"] == expected["epochs"] == 2500
    assert resumed["test"] == expected["test"]
    assert resumed["best_val"] == expected["best_val"]
    ours, theirs = final_weights(run_dir), final_weights(straight_run)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_resume_with_dropout_and_augmentation_is_exact(tmp_path, tiny_data_dir) -> None:
    """Dropout draws from the global RNG, augmentation from its own: both resume exactly."""
    from litnets import training
    from litnets.config import compose

    common = ["data=mnist", "model=mlp", f"paths.data_dir={tiny_data_dir}", "data.val_size=16"]
    common += ["model.dropout=0.3", "data.augment.hflip=true", "data.augment.crop_padding=2"]
    common += ["data.batch_size=16", "seed=4", "pictures=false", "logger=none"]
    common += ["callbacks.progress_bar=null", "trainer.enable_model_summary=false"]
    straight = training.train(
        compose([*common, "trainer.max_epochs=6"], output_dir=str(tmp_path / "straight"))
    )
    training.train(compose([*common, "trainer.max_epochs=3"], output_dir=str(tmp_path / "split")))
    resume = compose([f"resume={tmp_path / 'split'}"], output_dir=str(tmp_path / "unused"))
    resumed = training.train(resume, overrides=["trainer.max_epochs=6"])
    assert resumed["epochs"] == straight["epochs"] == 6
    assert resumed["test"] == straight["test"]
    ours, theirs = final_weights(tmp_path / "split"), final_weights(tmp_path / "straight")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_same_seed_same_metrics(tmp_path) -> None:
    args = ["trainer.max_epochs=300", "pictures=false", "seed=5"]
    for name in ("a", "b"):
        check_ok(run_script("train.py", *args, log_dir=tmp_path / name))
    a, b = (read_metrics(run_dirs(tmp_path / name)[0]) for name in ("a", "b"))
    assert a["test"] == b["test"]
    assert a["best_val"] == b["best_val"]


def test_divergence_stops_at_once_and_says_where(tmp_path) -> None:
    args = ["optimizer=sgd", "optimizer.lr=1e30", "task.check_finite_every_n_steps=1"]
    result = run_script("train.py", *args, log_dir=tmp_path)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("litnets: error: loss became nan at epoch 1, step 1")
    assert "learning rate 1e+30" in message
    (run_dir,) = run_dirs(tmp_path)
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "diverged"
    assert metrics["global_steps"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=mpl"], "unknown model option 'mpl'; did you mean model=mlp?"),
        (["optimizer=adamm"], "did you mean optimizer=adam?"),
        (["data.batch_size=0"], "data.batch_size must be a positive integer, got 0"),
        (["data.batch_size=abc"], "data.batch_size must be a positive integer, got 'abc'"),
        (["optimizer.lr=-0.1"], "optimizer.lr must be a positive number, got -0.1"),
        (["optimizer.lr=fast"], "optimizer.lr must be a positive number, got 'fast'"),
        (["trainer=gpu"], "no CUDA GPU is available here"),
        (
            ["trainer.max_epoch=3"],
            "unknown key 'trainer.max_epoch'; did you mean trainer.max_epochs?",
        ),
        (["~trainer.nothing"], "cannot delete 'trainer.nothing': no such key"),
        (["trainer.max_epochs=abc"], "trainer.max_epochs must be int or null, got 'abc' (str)"),
        (["trainer.precision=bf17"], "trainer.precision must be one of 64, 32, 16, "),
        (["model.batchnorm=maybe"], "model.batchnorm must be bool, got 'maybe' (str)"),
        (["model=poly"], "model Polynomial does regression"),
        (["data=mnist", "paths.data_dir=/nonexistent"], "MNIST files not found in /nonexistent"),
        (["ckpt_path=/nonexistent.ckpt"], "checkpoint not found: /nonexistent.ckpt"),
        (["resume=/tmp"], "cannot resume /tmp: it has no checkpoints/last.ckpt"),
    ],
)
def test_bad_input_is_one_line(tmp_path, overrides, message) -> None:
    result = run_script("train.py", *overrides, log_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("litnets: error:")]
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=abc", "seed must be int, got 'abc'"),
        ("test_ckpt=final", "test_ckpt must be one of 'best', 'last', got 'final'"),
        ("compile=maybe", "compile must be bool, got 'maybe'"),
        ("float32_matmul_precision=low", "must be one of 'highest', 'high', 'medium'"),
        ("optimized_metric=val/accuracy", "choose one of: val/loss, val/acc, test/loss"),
        # Lightning itself accepts 0 here and fails later on a modulo by zero
        ("trainer.check_val_every_n_epoch=0", "must be a positive integer or null, got 0"),
        ("trainer.num_nodes=0", "trainer.num_nodes must be a positive integer, got 0"),
    ],
)
def test_bad_run_values_are_caught_before_training(tmp_path, override, message) -> None:
    from litnets import training
    from litnets.config import compose
    from litnets.errors import ConfigError

    cfg = compose([override, "logger=none"], output_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=message):
        training.train(cfg)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("metrics.json"))


def test_unwritable_log_dir_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_script("train.py", f"paths.log_dir={blocker}/logs", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"litnets: error: cannot create run dirs under {blocker}/logs: "
        f"{blocker} is a file, not a directory"
    )


def test_truncated_data_file_is_one_line(tmp_path, tiny_data_dir) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir / "MNIST", data_dir / "MNIST")
    images = data_dir / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-100])
    result = run_script("train.py", "data=mnist", f"paths.data_dir={data_dir}", log_dir=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"litnets: error: cannot read {images}")
    assert last.endswith("(the file looks corrupt: replace it)")
    assert "Traceback" not in result.stderr


def test_other_scripts_name_unknown_keys(tmp_path) -> None:
    result = run_script("eval.py", "ckpt_pth=x", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "litnets: error: unknown key 'ckpt_pth'; did you mean ckpt_path? (+ckpt_pth=x would add it)"
    )


@pytest.mark.parametrize("script", ["eval.py", "predict.py", "export.py"])
def test_a_missing_checkpoint_argument_is_one_line(tmp_path, script) -> None:
    result = run_script(script, log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "litnets: error: ckpt_path is required: add ckpt_path=... to the command line"
    )


def test_resuming_a_dir_without_a_run_writes_nothing_there(tmp_path) -> None:
    empty = tmp_path / "not-a-run"
    empty.mkdir()
    result = run_script("train.py", f"resume={empty}", log_dir=tmp_path / "logs")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"litnets: error: cannot resume {empty}: it has no checkpoints/last.ckpt"
    )
    assert not list(empty.iterdir())


def test_resuming_with_fewer_epochs_than_trained_is_one_line(tmp_path) -> None:
    """Lightning refuses it with a traceback once the checkpoint is being restored."""
    check_ok(run_script("train.py", "trainer.max_epochs=3", "pictures=false", log_dir=tmp_path))
    (run_dir,) = run_dirs(tmp_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    for given in ([f"resume={run_dir}"], [f"ckpt_path={last}", "pictures=false"]):
        result = run_script("train.py", *given, "trainer.max_epochs=2", log_dir=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            f"litnets: error: {last} has trained 3 epochs, more than trainer.max_epochs=2: "
            "give trainer.max_epochs=3 or more"
        )
    assert run_dirs(tmp_path) == [run_dir]  # nothing new, and the run itself untouched
    assert read_metrics(run_dir)["status"] == "completed"


@pytest.mark.parametrize("key", ["hydra.run.dir", "hydra.sweep.dir"])
def test_a_dir_that_holds_a_run_is_not_reused(tmp_path, key) -> None:
    taken = tmp_path / "taken"
    job = taken / "0" if key == "hydra.sweep.dir" else taken
    (job / "checkpoints").mkdir(parents=True)
    (job / "checkpoints" / "last.ckpt").write_bytes(b"an earlier run")
    (job / "metrics.json").write_text("{}")
    sweep = ["-m"] if key == "hydra.sweep.dir" else []
    result = run_script("train.py", *sweep, f"{key}={taken}", log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"litnets: error: {taken} already holds a ")
    assert sorted(p.name for p in job.iterdir()) == ["checkpoints", "metrics.json"]  # untouched
    assert (job / "metrics.json").read_text() == "{}"


def test_run_dirs_never_collide(tmp_path) -> None:
    commands = [
        subprocess.Popen(
            [sys.executable, str(SCRIPTS / "train.py"), "trainer.max_epochs=5", "pictures=false"],
            env={**os.environ, "LITNETS_LOG_DIR": str(tmp_path)},
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    assert [p.wait(timeout=120) for p in commands] == [0, 0]
    assert len(run_dirs(tmp_path)) == 2
