"""Hydra's whole override grammar reaches Hydra, and litnets checks every value of it first.

In process: ``litnets.overrides`` parses with Hydra's own parsers and raises ``ConfigError``
for what Hydra would fail on later (or never report in one line). The sweeps themselves
run in tests/test_cli.py and tests/test_install.py.
"""

from __future__ import annotations

import re

import pytest

from litnets.config import compose
from litnets.errors import ConfigError
from litnets.overrides import CommandLine, check
from litnets.rundirs import quoted


def checked(*argv: str, config: str = "train") -> CommandLine:
    line = CommandLine.parse(list(argv), config)
    check(line)
    return line


@pytest.mark.parametrize(
    "argv",
    [
        ["-m", "optimizer=sgd,adam"],
        ["-m", "optimizer=choice(sgd,adam)", "optimizer.lr=choice(0.01,0.1)"],
        ["-m", "seed=range(1,4)", "trainer.max_epochs=range(2,10,3)"],
        ["-m", "model=glob(*,exclude=[cnn,poly])"],
        ["-m", "hydra/sweeper=optuna", "optimizer.lr=interval(0.001,0.1)", "optimized_metric=x"],
        ["-m", "optimizer=sgd,adam", "++optimizer.momentum=0.5"],
        ["task.loss='cross_entropy'", 'task.kind="classification"'],
        ["model.hidden_sizes=[16,8]", "++task.loss_kwargs={label_smoothing:0.1}"],
        ["+task.loss_kwargs.label_smoothing=0.1"],
        ["task.kind=null", "optimized_metric=null", "~logger", "trainer.max_epochs=3"],
        ["+trainer.gradient_clip_val=1.0", "++trainer.max_epochs=3", "~callbacks.hparams"],
        ["--cfg", "job", "experiment=mnist_mlp"],
        ["--info", "defaults", "experiment=sine_poly"],
        ["-c", "hydra", "--resolve"],
    ],
)
def test_every_form_of_the_grammar_passes(argv) -> None:
    checked(*argv)


def test_the_parsed_values_are_hydras(tmp_path) -> None:
    line = checked("task.loss='cross_entropy'", "model.hidden_sizes=[16,8]", "-m", "seed=1,2")
    assert line.args.multirun
    assert line.value("task.loss") == "cross_entropy"
    assert line.value("model.hidden_sizes") == [16, 8]
    assert line.value("seed") is None  # a sweep has no single value
    flags_first = ["-m", "task.loss='cross_entropy'", "model.hidden_sizes=[16,8]", "seed=1,2"]
    assert line.hydra_argv == flags_first  # where Hydra's parser wants them
    cfg = compose(
        ["++task.loss_kwargs={label_smoothing:0.1}", "+trainer.gradient_clip_val=1.0"],
        output_dir=str(tmp_path),
    )
    assert cfg.task.loss_kwargs.label_smoothing == 0.1
    assert cfg.trainer.gradient_clip_val == 1.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["model=mpl"], "unknown model option 'mpl'; did you mean model=mlp?"),
        (["-m", "model=mlp,cnnn"], "unknown model option 'cnnn'; did you mean model=cnn?"),
        (["-m", "optimizer=choice(sgd,adamm)"], "did you mean optimizer=adam?"),
        (["-m", "trainer.max_epochs=3,abc"], "trainer.max_epochs must be int or null, got 'abc'"),
        (
            ["-m", "data.batch_size=range(-1,2)"],
            "data.batch_size must be a positive integer, got -1",
        ),
        (["-m", "seed=choice(1,x)"], "seed must be int, got 'x'"),
        (
            [
                "-m",
                "hydra/sweeper=optuna",
                "optimizer.lr=interval(-1,0.1)",
                "optimized_metric=val/acc",
            ],
            "optimizer.lr must be a positive number, got -1",
        ),
        (
            ["-m", "optimizer=sgd,adam", "optimizer.momentum=0.9"],
            "unknown key 'optimizer.momentum'; optimizer has: lr, betas, weight_decay "
            "(+optimizer.momentum=0.9 would add it) (in the sweep's job with optimizer=adam)",
        ),
        (
            ["trainer.max_epoch=3"],
            "unknown key 'trainer.max_epoch'; did you mean trainer.max_epochs?",
        ),
        (["~trainer.nothing"], "cannot delete 'trainer.nothing': no such key"),
        (["+seed=3"], "+seed adds a key, but seed is already there"),
        (["-m", "optimizer.lr=interval(0.001,0.1)"], "interval(...) needs a sweeper that samples"),
        (["-m", "hydra/sweeper=optuna", "optimizer.lr=interval(0.001,0.1)"], "optimized_metric"),
        (
            ["hparams_search=iris_mlp", "hydra.sweeper.n_trials=0"],
            "hydra.sweeper.n_trials must be a positive integer, got 0",
        ),
        (["x=["], "cannot parse the overrides"),
        (["scheduler=null", "seed=1"], "cannot compose the config with scheduler=null"),
        (["task.loss_kwargs={label_smoothing:0.1}"], "To append to your config use +task.loss"),
        (["--cfg", "everything"], "argument --cfg/-c: invalid choice: 'everything'"),
        (["-m", "resume=/tmp", "seed=1,2"], "resume= continues one run: it cannot be part of"),
        (["--config-dir", "/nonexistent"], "--config-dir: config directory /nonexistent not found"),
        # /proc takes no new folder, not even root's (whom permission bits do not stop)
        (["hydra.run.dir=/proc/run"], "cannot create run dirs under /proc/run: /proc is not"),
        # runs went to /train/runs/... at the file system's root
        (["paths.log_dir="], "paths.log_dir is empty: give a folder (without it, runs go to"),
    ],
)
def test_mistakes_are_one_line_before_anything_runs(argv, message) -> None:
    with pytest.raises(ConfigError) as err:
        checked(*argv)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_an_empty_log_dir_variable_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("LITNETS_LOG_DIR", "")
    with pytest.raises(ConfigError, match=r"LITNETS_LOG_DIR is empty: give a folder"):
        checked("seed=1")


def test_other_commands_check_their_own_keys() -> None:
    checked("ckpt_path=x", "top_k=2", config="predict")
    with pytest.raises(ConfigError, match="top_k must be a positive integer, got 0"):
        checked("ckpt_path=x", "top_k=0", config="predict")
    with pytest.raises(ConfigError, match="did you mean ckpt_path"):
        checked("ckpt_pth=x", config="eval")
    for config, override, message in (
        ("eval", "accelerator=tpu", "accelerator must be one of 'auto', 'cpu', 'gpu'"),
        ("eval", "seed=abc", "seed must be int, got 'abc'"),
        ("export", "formats=[torch_exprot]", "formats must be a list, each item one of"),
        ("predict", "unknown_categories=maybe", "unknown_categories must be one of 'error'"),
    ):  # each was taken, then failed inside the run or (formats) was skipped without a word
        with pytest.raises(ConfigError, match=re.escape(message)):
            checked("ckpt_path=x", override, config=config)


def test_a_user_config_dir_adds_options(tmp_path, monkeypatch) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ntrainer:\n  max_epochs: 7\n"
    )
    with pytest.raises(ConfigError, match="unknown experiment option 'mine'"):
        checked("experiment=mine")
    checked("--config-dir", str(tmp_path), "experiment=mine")
    assert compose(["experiment=mine"], config_dirs=[tmp_path]).trainer.max_epochs == 7
    monkeypatch.setenv("LITNETS_CONFIG_DIR", str(tmp_path))
    checked("experiment=mine")
    assert compose(["experiment=mine"]).trainer.max_epochs == 7


def test_a_user_config_that_is_not_yaml_is_one_line(tmp_path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "twice.yaml").write_text("hidden_sizes: [16]\nhidden_sizes: [8]\n")
    expected = (
        f"bad YAML in {tmp_path / 'model' / 'twice.yaml'}, line 2, column 1: "
        "found duplicate key hidden_sizes (while constructing a mapping)"
    )
    for attempt in (
        lambda: checked("--config-dir", str(tmp_path), "model=twice"),
        lambda: checked("--config-dir", str(tmp_path), "-m", "model=twice,mlp"),
        lambda: compose(["model=twice"], config_dirs=[tmp_path]),
    ):
        with pytest.raises(ConfigError) as err:
            attempt()
        assert str(err.value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/tmp/run", "/tmp/run"), ("/tmp/a b", "'/tmp/a b'"), ("/tmp/it's", "'/tmp/it\\'s'")],
)
def test_paths_are_quoted_for_hydra(value, expected) -> None:
    assert quoted(value) == expected
    line = CommandLine.parse([f"hydra.run.dir={quoted(value)}"], "train")
    assert line.value("hydra.run.dir") == value
