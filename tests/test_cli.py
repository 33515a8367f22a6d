"""The ``litnets`` command: subcommands, help, Hydra's grammar end to end, ``python -m litnets``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

import forked
from conftest import check_ok, read_metrics, run_dirs

CONSOLE_SCRIPT = Path(sys.executable).parent / "litnets"
QUICK = ["trainer.max_epochs=2", "pictures=false", "logger=none"]


def litnets(*args: str, cwd: Path, module: bool = False) -> subprocess.CompletedProcess:
    """``litnets <args>`` (the console script), or ``python -m litnets <args>``."""
    command = [sys.executable, "-m", "litnets"] if module else [str(CONSOLE_SCRIPT)]
    return _run([*command, *args], cwd)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``command`` in ``cwd``, without the caller's LITNETS_* and HYDRA_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITNETS_", "HYDRA_"))}
    cwd.mkdir(parents=True, exist_ok=True)
    return forked.run(command, cwd=cwd, env=env, timeout=600)


def job_configs(sweep_dir: Path) -> list[dict]:
    return [
        yaml.safe_load((job / ".hydra" / "config.yaml").read_text()) for job in run_dirs(sweep_dir)
    ]


def test_help_lists_the_commands(tmp_path) -> None:
    result = litnets("--help", cwd=tmp_path)
    check_ok(result)
    for command in ("train", "eval", "predict", "export", "plot", "benchmark"):
        assert f"\n  {command} " in result.stdout
    assert litnets(cwd=tmp_path).returncode == 2  # no command: usage on stderr
    wrong = litnets("trian", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.strip().startswith(
        "litnets: error: unknown command 'trian'; did you mean `litnets train`?"
    )
    assert not list(tmp_path.iterdir())  # nothing written


def test_train_help_shows_groups_but_not_internal_ones(tmp_path) -> None:
    result = litnets("train", "--help", cwd=tmp_path, module=True)
    check_ok(result)
    out = result.stdout
    assert "  data: cifar10, csv, fashion_mnist, image_folder, iris, linear, mnist, sine" in out
    assert "  debug: anomaly, fdr, limit, overfit, profiler" in out
    assert "recipe:" not in out and "hydra/" not in out  # internal groups stay out
    assert "mnist × mlp" in out  # ... but the pairs with tutorial settings are named
    assert "-m, --multirun" in out and "--config-dir DIR" in out
    eval_help = litnets("eval", "--help", cwd=tmp_path)
    check_ok(eval_help)
    assert "ckpt_path=???" in eval_help.stdout
    assert not list(tmp_path.iterdir())


def test_cfg_job_shows_what_a_pair_brings_and_runs_nothing(tmp_path) -> None:
    result = litnets("train", "data=mnist", "model=mlp", "--cfg", "job", cwd=tmp_path)
    check_ok(result)
    cfg = yaml.safe_load(result.stdout)
    assert cfg["tutorial"].startswith("seed 002 (conf/recipe/mnist_mlp.yaml)")
    assert cfg["optimizer"]["_target_"] == "torch.optim.SGD"
    assert cfg["scheduler"]["_target_"] == "torch.optim.lr_scheduler.StepLR"
    assert cfg["model"]["hidden_sizes"] == [300, 100]
    info = litnets("train", "--info", "defaults", "experiment=sine_poly", cwd=tmp_path)
    check_ok(info)
    assert "recipe/sine_poly" in info.stdout
    assert not list(tmp_path.iterdir())


def test_interval_sweeps_with_optuna(tmp_path) -> None:
    sweep_dir = tmp_path / "study"
    result = litnets(
        "train",
        "-m",
        "hydra/sweeper=optuna",
        "optimizer.lr=tag(log, interval(0.001, 0.1))",
        "hydra.sweeper.n_trials=2",
        "optimized_metric=val/acc",
        "hydra.sweeper.direction=maximize",
        "trainer.max_epochs=20",
        "pictures=false",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    check_ok(result)
    rates = [c["optimizer"]["lr"] for c in job_configs(sweep_dir)]
    assert len(rates) == 2 and all(0.001 <= r <= 0.1 for r in rates)
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert best["best_params"]["optimizer.lr"] in rates


def test_values_of_every_kind_reach_the_run(tmp_path) -> None:
    """Quoted strings, lists, dicts, null, +key, ++key and ~key in one real run."""
    run_dir = tmp_path / "run"
    result = litnets(
        "train",
        "task.loss='cross_entropy'",
        "model.hidden_sizes=[8,8]",
        "++task.loss_kwargs={label_smoothing:0.1}",
        "task.kind=null",
        "+trainer.gradient_clip_val=0.5",
        "~callbacks.hparams",
        *QUICK,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        module=True,
    )
    check_ok(result)
    cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert cfg["task"] == {**cfg["task"], "loss": "cross_entropy", "kind": None}
    assert cfg["task"]["loss_kwargs"] == {"label_smoothing": 0.1}
    assert cfg["model"]["hidden_sizes"] == [8, 8]
    assert cfg["trainer"]["gradient_clip_val"] == 0.5
    assert "hparams" not in cfg["callbacks"]
    assert read_metrics(run_dir)["status"] == "completed"


COUNTING_COMPOSITIONS = """
import sys
from hydra._internal.config_loader_impl import ConfigLoaderImpl

modes = []
compose = ConfigLoaderImpl.load_configuration


def counted(self, *args, **kwargs):
    modes.append(str(kwargs.get("run_mode")))
    return compose(self, *args, **kwargs)


ConfigLoaderImpl.load_configuration = counted
from litnets.cli import main

try:
    main(sys.argv[1:])
finally:
    print("compositions:", *modes, file=sys.stderr)
"""


def compositions(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``litnets <args>`` in a process that counts Hydra's compositions (and their modes)."""
    result = _run([sys.executable, "-c", COUNTING_COMPOSITIONS, *args], cwd)
    line = next(x for x in result.stderr.splitlines() if x.startswith("compositions:"))
    return result, line.split()[1:]


def test_a_run_composes_its_config_once(tmp_path) -> None:
    """Hydra composes a run's config in ``get_mode`` and again to run it (hydra#3440), and
    litnets checks the keys on a config too: all three are one composition here. Two or
    three means Hydra or litnets composed again: see ``litnets.commands.base.composed_once``.
    """
    run_dir = tmp_path / "run"
    result, modes = compositions(
        "train", "optimizer.lr=0.05", *QUICK, f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    check_ok(result)
    assert modes == ["RunMode.RUN"]
    assert read_metrics(run_dir)["status"] == "completed"
    saved = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    assert saved["optimizer"]["lr"] == 0.05  # the run got the config composed for the check


def test_an_unknown_key_is_one_line_from_the_one_composition(tmp_path) -> None:
    """Hydra's one composition fails; only then is the line checked key by key (once more)."""
    result, modes = compositions("train", "trainer.max_epoch=3", cwd=tmp_path)
    assert modes == ["RunMode.RUN", "RunMode.RUN"]
    assert result.returncode == 2
    assert "unknown key 'trainer.max_epoch'; did you mean trainer.max_epochs?" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists()  # no run dir was made


def test_a_user_config_that_is_not_yaml_is_one_line_naming_the_spot(tmp_path) -> None:
    """PyYAML's error came through Hydra as a traceback; a run or a sweep now says where."""
    models = tmp_path / "configs" / "model"
    models.mkdir(parents=True)
    (models / "broken.yaml").write_text("hidden_sizes: [16, 8\nactivation: relu\n")
    for sweep in ([], ["-m", "model=broken,mlp"]):
        result = litnets(
            "train", "--config-dir", str(tmp_path / "configs"), "model=broken", *sweep, *QUICK,
            cwd=tmp_path,
        )  # fmt: skip
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        message = result.stderr.strip()
        assert "\n" not in message
        assert message.startswith(
            f"litnets: error: bad YAML in {models / 'broken.yaml'}, line 2, column 11: "
        )  # then libyaml's words or PyYAML's for what it expected
        assert message.endswith("(while parsing a flow sequence)")
        assert not (tmp_path / "logs").exists()


def test_an_interpolation_that_cannot_resolve_is_one_line(tmp_path) -> None:
    """A ``${...}`` naming an unset variable or a missing key, on the line or in a config
    file, was OmegaConf's traceback (and iterating Hydra's list of the line's overrides
    resolved them too)."""
    models = tmp_path / "configs" / "model"
    models.mkdir(parents=True)
    (models / "from_env.yaml").write_text(
        "defaults:\n  - mlp\n  - _self_\nhidden_sizes: ${oc.env:LITNETS_TEST_UNSET_SIZES}\n"
    )
    for given, expected in (
        (["data.batch_size=${oc.env:LITNETS_TEST_UNSET}"],
         "cannot resolve data.batch_size: Environment variable 'LITNETS_TEST_UNSET' not found"),
        (["optimizer.lr=${optimizer.rate}"],
         "cannot resolve optimizer.lr: Interpolation key 'optimizer.rate' not found"),
        (["--config-dir", str(tmp_path / "configs"), "model=from_env"],
         "cannot resolve model.hidden_sizes: Environment variable 'LITNETS_TEST_UNSET_SIZES' "
         "not found"),
    ):  # fmt: skip
        result = litnets("train", *given, *QUICK, cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == f"litnets: error: {expected}"
        assert "Traceback" not in result.stderr
        assert not list((tmp_path / "logs").glob("train/runs/*"))  # no run dir left


def test_a_config_that_sets_multirun_still_sweeps(tmp_path) -> None:
    """The mode litnets hands Hydra is the configs' own: ``hydra.mode: MULTIRUN`` in a user's
    experiment makes a plain command a sweep, as it does in Hydra."""
    configs = tmp_path / "configs" / "experiment"
    configs.mkdir(parents=True)
    (configs / "sweepy.yaml").write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n")
    sweep_dir = tmp_path / "sweep"
    result, modes = compositions(
        "train", "--config-dir", str(tmp_path / "configs"), "experiment=sweepy", *QUICK,
        f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
    )  # fmt: skip
    check_ok(result)
    assert modes[0] == "RunMode.RUN"  # get_mode's; then Hydra's multirun compositions
    assert "RunMode.MULTIRUN" in modes[1:]
    assert [read_metrics(job)["status"] for job in run_dirs(sweep_dir)] == ["completed"]
