"""A wheel, installed outside the checkout, works from an empty directory; the README's
"Extend litnets" examples run as written.

The wheel is built from a copy of the repository to which the README's in-package example
was applied, installed with ``pip install --target`` into a temporary directory, and run
with that directory first on ``PYTHONPATH`` (ahead of the editable install of the checkout).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, check_ok, read_metrics, readme_block, run_dirs


@dataclass
class Installed:
    wheel: Path
    site: Path

    def env(self, **extra: str) -> dict[str, str]:
        """This interpreter, the installed wheel first on its path, no litnets settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LITNETS_", "HYDRA_"))}
        path = [str(self.site / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
        return {**env, "PYTHONPATH": str(self.site), "PATH": os.pathsep.join(path), **extra}

    def run(self, *command: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.run(
            list(command), cwd=cwd, env=self.env(**extra), capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    project = root / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for part in ("src", "conf"):
        shutil.copytree(REPO / part, project / part, ignore=ignore)
    for file in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / file, project / file)
    applied = subprocess.run(
        ["bash", "-e"], input=readme_block("extend-package"), cwd=project, text=True
    )
    assert applied.returncode == 0
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    # The installed setuptools builds it (as `pip install -e .` did); no download needed.
    check_ok(subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(project)],
        capture_output=True, text=True,
    ))  # fmt: skip
    (wheel,) = (root / "dist").glob("litnets-*.whl")
    check_ok(subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(root / "site"), str(wheel)],
        capture_output=True, text=True,
    ))  # fmt: skip
    return Installed(wheel, root / "site")


def test_the_package_list_is_complete() -> None:
    """pyproject.toml lists packages by hand (conf/ is mapped in): none may be missing."""
    listed = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    inits = (REPO / "src").rglob("__init__.py")
    found = {".".join(init.parent.relative_to(REPO / "src").parts) for init in inits}
    assert set(listed) == found | {"litnets.conf"}


def test_the_wheel_carries_every_config(installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    configs = {
        f"litnets/conf/{p.relative_to(REPO / 'conf')}" for p in (REPO / "conf").rglob("*.yaml")
    }
    assert configs <= names
    assert "litnets/conf/model/lenet.yaml" in names  # the README's example, applied


def test_installed_litnets_trains_from_an_empty_directory(installed, tmp_path) -> None:
    empty = tmp_path / "empty"
    where = installed.run(
        sys.executable, "-c", "import litnets.config as c; print(c.__file__, c.CONFIG_DIR)",
        cwd=empty,
    )  # fmt: skip
    check_ok(where)
    assert where.stdout.split() == [
        str(installed.site / "litnets" / "config.py"),
        str(installed.site / "litnets" / "conf"),
    ]  # the wheel's copy, not the checkout's
    result = installed.run(
        "litnets", "train", "trainer.max_epochs=200", "pictures=false", cwd=empty
    )
    check_ok(result)
    (run_dir,) = run_dirs(empty)
    assert run_dir.parent == empty / "logs" / "train" / "runs"
    metrics = read_metrics(run_dir)
    assert metrics["status"] == "completed"
    assert metrics["environment"]["git"] is None  # not run from a checkout
    assert (
        metrics["environment"]["command"] == "litnets train trainer.max_epochs=200 pictures=false"
    )
    moved = installed.run(
        "litnets", "train", "trainer.max_epochs=2", "logger=none", cwd=empty,
        LITNETS_LOG_DIR=str(tmp_path / "elsewhere"),
    )  # fmt: skip
    check_ok(moved)
    assert len(run_dirs(tmp_path / "elsewhere")) == 1


def test_installed_sweeps_expand_choice_range_and_glob(installed, tmp_path) -> None:
    """2 optimizers × 2 seeds × 2 models (glob) = 8 jobs, each with its own combination."""
    sweep_dir = tmp_path / "sweep"
    result = installed.run(
        "litnets", "train",
        "optimizer=choice(sgd,adam)",
        "-m",  # after an override: litnets hands Hydra its flags first
        "seed=range(1,3)",
        "model=glob(*,exclude=[cnn,lenet,poly,linear])",
        "trainer.max_epochs=2", "pictures=false", "logger=none",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    check_ok(result)
    configs = [
        yaml.safe_load((d / ".hydra" / "config.yaml").read_text()) for d in run_dirs(sweep_dir)
    ]
    combos = {(c["optimizer"]["_target_"], c["seed"], c["model"]["_target_"]) for c in configs}
    expected = itertools.product(
        ["torch.optim.SGD", "torch.optim.Adam"],
        [1, 2],
        ["litnets.models.mlp.MLP", "litnets.models.softmax.SoftmaxRegression"],
    )
    assert len(configs) == 8
    assert combos == set(expected)
    assert all(read_metrics(job)["status"] == "completed" for job in run_dirs(sweep_dir))


def test_the_package_example_trains(installed, tmp_path, tiny_data_dir) -> None:
    result = installed.run(
        "litnets", "train", "experiment=moons_mlp", "pictures=false", cwd=tmp_path
    )
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path)
    assert read_metrics(run_dir)["test"]["test/acc"] >= 0.9
    lenet = installed.run(
        "litnets", "train", "data=mnist", "model=lenet", f"paths.data_dir={tiny_data_dir}",
        "data.val_size=16", "trainer.max_epochs=2", "pictures=false",
        cwd=tmp_path / "lenet",
    )  # fmt: skip
    check_ok(lenet)
    assert read_metrics(run_dirs(tmp_path / "lenet")[0])["model"] == "LeNet"


def test_the_user_dir_example_trains(installed, tmp_path) -> None:
    result = subprocess.run(
        ["bash", "-e"], input=readme_block("extend-user"), cwd=tmp_path,
        env=installed.env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    check_ok(result)
    (run_dir,) = run_dirs(tmp_path / "logs")
    metrics = read_metrics(run_dir)
    assert (metrics["data"], metrics["model"]) == ("WineDataModule", "Wide")
    assert metrics["test"]["test/acc"] >= 0.85
    by_env = installed.run(
        sys.executable, "-m", "litnets", "train", "experiment=wine", "trainer.max_epochs=2",
        "logger=none", "paths.log_dir=env-logs", cwd=tmp_path, LITNETS_CONFIG_DIR="my_conf",
    )  # fmt: skip
    check_ok(by_env)
    assert read_metrics(run_dirs(tmp_path / "env-logs")[0])["data"] == "WineDataModule"


FROM_THE_CHECKOUT = """
import sys

# Only the checkout's src/ on PYTHONPATH, as on a GPU host: no installed litnets is found
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
import litnets.cli, litnets.config

assert litnets.cli.__file__.startswith(sys.argv[1]), litnets.cli.__file__
print("configs:", litnets.config.CONFIG_DIR)
sys.exit(litnets.cli.main(sys.argv[2:]))
"""


def test_a_checkout_runs_without_installing(tmp_path) -> None:
    """``PYTHONPATH=<checkout>/src`` is enough: the configs are the checkout's ``conf/``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITNETS_", "HYDRA_"))}
    env["PYTHONPATH"] = str(REPO / "src")
    command = [sys.executable, "-c", FROM_THE_CHECKOUT, str(REPO / "src"), "train",
               "trainer.max_epochs=2", "pictures=false", "logger=none",
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    check_ok(result)
    assert f"configs: {REPO / 'conf'}" in result.stdout
    assert read_metrics(tmp_path / "run")["status"] == "completed"
