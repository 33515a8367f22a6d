"""Where the configs live, and composing them outside a Hydra main (tests, notebooks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "conf"


def _register_resolvers() -> None:
    if not OmegaConf.has_resolver("litnets.root"):
        OmegaConf.register_new_resolver("litnets.root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("litnets.pid"):
        OmegaConf.register_new_resolver("litnets.pid", lambda: str(os.getpid()))


_register_resolvers()


def compose(
    overrides: Sequence[str] = (), config_name: str = "train", *, output_dir: str | None = None
) -> DictConfig:
    """Compose a config as the scripts would, without starting a run.

    ``output_dir`` stands in for Hydra's run dir, which only exists inside a Hydra main.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides))
    if output_dir is not None:
        OmegaConf.update(cfg, "paths.output_dir", str(output_dir), force_add=True)
    return cfg
