"""Config values checked against the type hints of what they build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import lightning as L
import pytest
import torch

from litnets.errors import ConfigError
from litnets.models.cnn import CNN
from litnets.models.mlp import MLP
from litnets.signatures import PositiveInt, check_arguments


def build(
    count: int,
    rate: float,
    flag: bool,
    name: str | None,
    mode: Literal["a", "b"] | int,
    anything,
    sizes: Sequence[PositiveInt] = (),
    shape: tuple[int, ...] = (),
    pair: tuple[float, float] = (0.0, 1.0),
    module: torch.nn.Module | None = None,
) -> None:
    """A target with one parameter of each kind of hint."""


GOOD = {"count": 3, "rate": 1, "flag": False, "name": None, "mode": "b", "anything": [1]}


def test_values_that_fit_pass() -> None:
    check_arguments(build, GOOD, "thing")
    check_arguments(build, {**GOOD, "mode": 7, "module": "left to the target"}, "thing")
    check_arguments(build, {**GOOD, "sizes": [300, 100], "shape": [1, 28, 28]}, "thing")
    check_arguments(build, {**GOOD, "sizes": (), "pair": ["fixed-length", "left to it"]}, "t")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", "3", "thing.count must be int, got '3' (str)"),
        ("count", True, "thing.count must be int, got True (bool)"),
        ("rate", "fast", "thing.rate must be float, got 'fast' (str)"),
        ("flag", 1, "thing.flag must be bool, got 1 (int)"),
        ("name", 5, "thing.name must be str or null, got 5 (int)"),
        ("mode", "c", "thing.mode must be one of 'a', 'b' or int, got 'c' (str)"),
        (
            "sizes",
            [16, 0],
            "thing.sizes must be a list, each item a positive integer, got [16, 0] (list)",
        ),
        (
            "sizes",
            "abc",
            "thing.sizes must be a list, each item a positive integer, got 'abc' (str)",
        ),
        ("sizes", 16, "thing.sizes must be a list, each item a positive integer, got 16 (int)"),
        ("shape", [1, 2.5], "thing.shape must be a list, each item int, got [1, 2.5] (list)"),
    ],
)
def test_values_that_do_not_fit_name_their_key(key, value, message) -> None:
    with pytest.raises(ConfigError) as err:
        check_arguments(build, {**GOOD, key: value}, "thing")
    assert str(err.value) == message


def test_lightning_trainer_hints_are_read() -> None:
    check_arguments(L.Trainer, {"max_epochs": 3, "devices": "auto", "precision": "bf16-mixed"}, "t")
    with pytest.raises(ConfigError, match=r"t\.max_epochs must be int or null"):
        check_arguments(L.Trainer, {"max_epochs": "three"}, "t")


@pytest.mark.parametrize(
    ("scheduler", "key"),
    [(torch.optim.lr_scheduler.StepLR, "step_size"),
     (torch.optim.lr_scheduler.CosineAnnealingLR, "T_max")],
)  # fmt: skip
def test_a_schedule_that_would_divide_by_zero_mid_training_is_refused(scheduler, key) -> None:
    """torch takes 0 here and fails with ZeroDivisionError when first stepped."""
    check_arguments(scheduler, {key: 5}, "scheduler")
    with pytest.raises(ConfigError, match=f"scheduler.{key} must be a positive integer, got 0"):
        check_arguments(scheduler, {key: 0}, "scheduler")


@pytest.mark.parametrize(
    ("model", "key", "value"),
    [(MLP, "hidden_sizes", [300, 0]), (CNN, "channels", [0]), (CNN, "kernel_size", 0)],
)
def test_a_layer_without_width_is_refused(model, key, value) -> None:
    """``hidden_sizes=[0]`` built a layer of no units and trained it to chance."""
    with pytest.raises(ConfigError, match=f"model.{key} must be"):
        check_arguments(model, {key: value}, "model")
