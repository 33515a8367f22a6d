"""Where the configs live, and composing them outside a Hydra main (tests, notebooks)."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "conf"


def launched_rank_is_zero() -> bool:
    """False in the extra processes of a multi-process launch (torchrun, srun, Lightning DDP).

    Read from the launchers' environment variables, because Hydra needs the answer before
    any process group exists: only rank 0 saves the composed config (``.hydra/``).
    """
    env = os.environ
    if "RANK" in env:  # torchrun
        return env["RANK"] == "0"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:  # srun
        return env["SLURM_PROCID"] == "0"
    return env.get("LOCAL_RANK", "0") == "0" and env.get("NODE_RANK", "0") == "0"


def _rank() -> str:
    env = os.environ
    return env.get("RANK") or env.get("SLURM_PROCID") or env.get("LOCAL_RANK", "0")


def run_name() -> str:
    """The run dir's name: time and process id, or one name shared by every rank of a launch.

    A single process gets ``<date>_<time>_<pid>`` (two runs in the same second still differ).
    Under torchrun or a multi-task srun each rank composes its own config; a name from the
    launch's id keeps them in one dir (``torchrun-<rdzv id>``, ``slurm-<job>-<step>``).
    ``LITNETS_RUN_NAME`` sets it outright.
    """
    env = os.environ
    if env.get("LITNETS_RUN_NAME"):
        return env["LITNETS_RUN_NAME"]
    if "TORCHELASTIC_RUN_ID" in env:
        run_id = env["TORCHELASTIC_RUN_ID"]
        return f"torchrun-{run_id if run_id not in ('', 'none') else os.getppid()}"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in env:
        return f"slurm-{env['SLURM_JOB_ID']}-{env.get('SLURM_STEP_ID', '0')}"
    return f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}"


def resume_checkpoint(run_dir: str | Path) -> Path:
    """``<run dir>/checkpoints/last.ckpt``, what ``resume=`` continues from; it must exist."""
    from litnets.errors import CheckpointError

    folder = Path(run_dir).expanduser().resolve()
    last = folder / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise CheckpointError(f"cannot resume {folder}: it has no checkpoints/last.ckpt")
    return last


def _register_resolvers() -> None:
    resolvers = {
        "litnets.root": lambda: str(REPO_ROOT),
        "litnets.run_name": run_name,
        # `${litnets.on_rank_zero:x}`: x on rank 0, null on the other ranks of a launch
        "litnets.on_rank_zero": lambda value: value if launched_rank_is_zero() else None,
        "litnets.rank_suffix": lambda: "" if launched_rank_is_zero() else f"_rank{_rank()}",
    }
    for name, resolver in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver, use_cache=True)


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
