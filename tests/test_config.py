"""Every config group option composes, alone and through the presets."""

from __future__ import annotations

import pytest
from hydra.utils import get_class

from litnets.config import CONFIG_DIR, compose

GROUPS = ["data", "model", "optimizer", "scheduler", "trainer", "logger", "callbacks"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize(
    ("group", "option"),
    [(g, o) for g in [*GROUPS, "experiment", "hparams_search"] for o in options(g)],
)
def test_every_option_composes(group: str, option: str) -> None:
    cfg = compose(overrides=[f"{group}={option}"], output_dir="/tmp/unused")
    node = cfg.data if group in {"experiment", "hparams_search"} else cfg.get(group)
    if node and "_target_" in node:
        get_class(node._target_)  # the target imports
    for name in ("data", "model", "trainer"):
        get_class(cfg[name]._target_)


@pytest.mark.parametrize(
    ("group", "option"), [(g, o) for g in ("callbacks", "logger") for o in options(g)]
)
def test_every_callback_and_logger_target_imports(group: str, option: str) -> None:
    """Each entry's _target_ names a class that exists (a typo fails here, not mid-training)."""
    cfg = compose([f"{group}={option}"], output_dir="/tmp/unused")
    for name, node in (cfg.get(group) or {}).items():
        assert "_target_" in node, f"{group}.{name} has no _target_"
        assert isinstance(get_class(node._target_), type), f"{group}.{name}"


def test_every_group_has_options() -> None:
    for group in GROUPS:
        assert len(options(group)) >= 2, group


def test_default_is_the_iris_tutorial() -> None:
    cfg = compose(output_dir="/tmp/unused")
    assert cfg.data._target_.endswith("IrisDataModule")
    assert list(cfg.model.hidden_sizes) == [10]
    assert cfg.optimizer._target_ == "torch.optim.Adam"


def test_pair_defaults_follow_the_tutorial_and_yield_to_overrides() -> None:
    cfg = compose(["model=mlp", "data=mnist"], output_dir="/tmp/unused")
    assert cfg.optimizer._target_ == "torch.optim.SGD"
    assert (cfg.optimizer.lr, cfg.optimizer.momentum) == (0.01, 0.5)
    assert cfg.scheduler._target_.endswith("StepLR")
    assert (cfg.scheduler.step_size, cfg.scheduler.gamma) == (5, 0.1)
    assert (cfg.data.batch_size, cfg.data.eval_batch_size, cfg.trainer.max_epochs) == (64, 128, 20)
    assert list(cfg.model.hidden_sizes) == [300, 100] and cfg.model.batchnorm

    cfg = compose(["model=mlp", "data=mnist", "optimizer=adam", "optimizer.lr=0.003"])
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.optimizer.lr == 0.003 and "momentum" not in cfg.optimizer


def test_experiment_accepts_further_overrides() -> None:
    cfg = compose(["experiment=mnist_mlp", "optimizer=adam", "trainer.max_epochs=3"])
    assert cfg.optimizer._target_ == "torch.optim.Adam"
    assert cfg.trainer.max_epochs == 3
    assert cfg.data._target_.endswith("MNISTDataModule")
