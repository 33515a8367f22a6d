"""The Python API: ``from litnets import train, evaluate, predict, export``; import is inert."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import litnets
from litnets.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    log_dir = tmp_path_factory.mktemp("api")
    return litnets.train(["trainer.max_epochs=100", "pictures=false", f"paths.log_dir={log_dir}"])


def test_train_returns_the_run_summary(trained) -> None:
    run_dir = Path(trained["run_dir"])
    assert trained == json.loads((run_dir / "metrics.json").read_text())
    assert trained["status"] == "completed"
    assert trained["test"]["test/acc"] > 0.6
    assert (run_dir / ".hydra" / "config.yaml").is_file()  # the same run dir as the command's
    assert (run_dir / "train.log").is_file()
    assert trained["environment"]["command"].startswith("litnets.train([")


def test_evaluate_predict_and_export_take_a_run(trained, tmp_path) -> None:
    where = [f"ckpt_path={trained['run_dir']}", f"paths.log_dir={tmp_path}"]
    evaluated = litnets.evaluate(where)
    assert evaluated["test"] == trained["test"]  # the best checkpoint, tested again
    predicted = litnets.predict([*where, "input=test", "num_samples=6"])
    assert len(predicted["predictions"]) == 6
    assert predicted["predictions"][0]["prediction"] in {"setosa", "versicolor", "virginica"}
    assert 0.0 <= predicted["accuracy"] <= 1.0
    assert Path(predicted["predictions_csv"]).is_file()
    exported = litnets.export(where)
    assert Path(exported["files"]["weights"]).is_file()


def test_mistakes_raise_the_one_line_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="did you mean model=mlp"):
        litnets.train(["model=mpl"])
    with pytest.raises(ConfigError, match=r"litnets.train\(\) runs one job"):
        litnets.train(["seed=1,2"])
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        litnets.evaluate([f"ckpt_path={tmp_path}/none.ckpt", f"paths.log_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="cannot start 2-process DDP"):
        litnets.train(["trainer=ddp_cpu", f"paths.log_dir={tmp_path}"])
    unset = "cannot resolve data.batch_size: Environment variable 'LITNETS_TEST_UNSET' not found"
    with pytest.raises(ConfigError, match=unset):  # OmegaConf's error, found inside the run
        litnets.train(["data.batch_size=${oc.env:LITNETS_TEST_UNSET}", f"paths.log_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"task\.lean_step must be bool, got 'maybe'"):
        litnets.train(["task.lean_step=maybe", f"paths.log_dir={tmp_path}"])  # was taken as true
    assert not list(tmp_path.glob("train/runs/*"))


@pytest.mark.parametrize(
    ("model_yaml", "message"),
    [
        ("- mlp\n", "the model config names no _target_ (the class to build)"),
        ("{}\n", "the model config names no _target_ (the class to build)"),
        ("_target_: nowhere.Model\n",
         "cannot build model: no such _target_ 'nowhere.Model' (Are you sure that module "
         "'nowhere' is installed?)"),
    ],
)  # fmt: skip
def test_a_model_config_that_names_no_class_is_one_line(tmp_path, model_yaml, message) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text(model_yaml)
    with pytest.raises(ConfigError) as err:
        litnets.train(["model=mine", f"paths.log_dir={tmp_path / 'logs'}"], config_dir=tmp_path)
    assert str(err.value) == message
    assert not list((tmp_path / "logs").glob("train/runs/*"))  # nothing left behind


def test_a_run_leaves_the_callers_logging_alone(tmp_path) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    lightning = logging.getLogger("lightning.pytorch")
    lightning_handlers = list(lightning.handlers)
    litnets.train(
        ["trainer.max_epochs=2", "pictures=false", "logger=none", f"paths.log_dir={tmp_path}"]
    )
    assert root.handlers == handlers
    assert lightning.handlers == lightning_handlers


STATE = """
import logging, signal, sys, warnings
import torch, lightning, hydra, omegaconf, torchmetrics  # their own import-time effects
from omegaconf import OmegaConf

def loggers():
    return {name: (tuple(lg.handlers), tuple(lg.filters), lg.level, lg.propagate)
            for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}

def state(known):
    return {
        "warning filters": list(warnings.filters),
        "root logger": (logging.root.handlers[:], logging.root.filters[:], logging.root.level),
        "loggers": {name: value for name, value in loggers().items() if name in known},
        "signal handlers": [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)],
        "resolvers": [OmegaConf.has_resolver(n) for n in ("litnets.run_name", "litnets.cwd")],
        "matmul precision": torch.get_float32_matmul_precision(),
    }

known = set(loggers())
before = state(known)
import litnets
from litnets import train, evaluate, predict, export
import litnets.api, litnets.training, litnets.inference, litnets.cli, litnets.commands.base
import litnets.callbacks.pictures, litnets.callbacks.last_checkpoint, litnets.benchmark
after = state(known)
changed = [key for key in before if before[key] != after[key]]
print(changed)
sys.exit(1 if changed else 0)
"""


def test_importing_litnets_changes_no_global_state() -> None:
    result = subprocess.run([sys.executable, "-c", STATE], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
