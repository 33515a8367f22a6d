"""Config values checked against the type hints of what they build."""

from __future__ import annotations

from typing import Literal

import lightning as L
import pytest
import torch

from litnets.errors import ConfigError
from litnets.signatures import check_arguments


def build(
    count: int,
    rate: float,
    flag: bool,
    name: str | None,
    mode: Literal["a", "b"] | int,
    anything,
    module: torch.nn.Module | None = None,
) -> None:
    """A target with one parameter of each kind of hint."""


GOOD = {"count": 3, "rate": 1, "flag": False, "name": None, "mode": "b", "anything": [1]}


def test_values_that_fit_pass() -> None:
    check_arguments(build, GOOD, "thing")
    check_arguments(build, {**GOOD, "mode": 7, "module": "left to the target"}, "thing")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("count", "3", "thing.count must be int, got '3' (str)"),
        ("count", True, "thing.count must be int, got True (bool)"),
        ("rate", "fast", "thing.rate must be float, got 'fast' (str)"),
        ("flag", 1, "thing.flag must be bool, got 1 (int)"),
        ("name", 5, "thing.name must be str or null, got 5 (int)"),
        ("mode", "c", "thing.mode must be one of 'a', 'b' or int, got 'c' (str)"),
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
