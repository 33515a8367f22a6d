"""Lightning's chatter about choices litnets makes on purpose, silenced for one run only.

Importing litnets changes no warning filter or logger: a notebook that imports it sees every
warning it saw before. A run (``train``, ``evaluate``, ...) enters ``quiet_lightning()``,
which restores the filters when it ends.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

IGNORED_WARNINGS = (
    "You have overridden `transfer_batch_to_device`",
    # Full-batch runs have one step per epoch; litnets logs steps by global step anyway.
    "The number of training batches .* logging interval",
    # Lightning 2.6 against torch ≥ 2.9 warns about its own use of a torch API on every run.
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    # Run dirs are unique, so only resume= meets a full checkpoint dir: it continues there.
    "Checkpoint directory .* exists and is not empty",
    # Epoch metrics are torchmetrics states, already summed over DDP ranks by compute().
    r"It is recommended to use `self.log\(.*sync_dist=True",
    # overfit_batches: litnets' own batch iterators stop shuffling (data/base.py), which
    # Lightning cannot see in a plain iterable and announces it does itself.
    "You requested to overfit but enabled .* dataloader shuffling",
    # The lean step is manual optimization; a checkpoint every N steps holds the weights
    # after step N, which is where resume continues (tests/test_preemption.py, exact).
    "Using ModelCheckpoint with manual optimization and every_n_train_steps",
)

SRUN_HINT = "The `srun` command is available on your system but is not used"
"""Lightning's hint, given wherever srun is installed: it matters inside a SLURM allocation
(an sbatch script that forgot srun hangs), and is noise everywhere else (a login node, a
workstation with SLURM's client), where Lightning also gives it twice per run."""

_TIPS_LOGGER = "lightning.pytorch.utilities.rank_zero"


def _not_a_tip(record: logging.LogRecord) -> bool:
    """Drop Lightning's advertising tips (lines starting with 💡)."""
    return not str(record.msg).startswith("💡")


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Within the block, Lightning's tips and the warnings above are not shown."""
    logger = logging.getLogger(_TIPS_LOGGER)
    logger.addFilter(_not_a_tip)
    with warnings.catch_warnings():
        for message in IGNORED_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        if "SLURM_JOB_ID" not in os.environ:
            warnings.filterwarnings("ignore", message=SRUN_HINT)
        try:
            yield
        finally:
            logger.removeFilter(_not_a_tip)
