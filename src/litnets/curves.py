"""Reading logged scalars back from TensorBoard event files, for ``scripts/plot.py``."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

Curves = dict[str, list[tuple[float, float]]]
"""Per tag, the (epoch, value) points of one run."""


def find_runs(paths: list[Path]) -> list[Path]:
    """Every folder under ``paths`` that holds TensorBoard event files."""
    folders = {event.parent for path in paths for event in path.rglob("events.out.tfevents.*")}
    return sorted(folders)


def read_scalars(folder: Path) -> Curves:
    """All scalars of one run, indexed by epoch (Lightning logs ``epoch`` at each step)."""
    by_tag: dict[str, dict[int, float]] = defaultdict(dict)
    for file in sorted(folder.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                elif (
                    value.HasField("tensor") and value.metadata.plugin_data.plugin_name == "scalars"
                ):
                    number = float(tensor_util.make_ndarray(value.tensor))
                else:
                    continue
                by_tag[value.tag][event.step] = number
    epochs = by_tag.pop("epoch", {})
    curves: Curves = {}
    for tag, points in by_tag.items():
        curves[tag] = [
            (epochs.get(step, step) + 1, value)
            for step, value in sorted(points.items())
            if step in epochs or not epochs
        ]
    return curves


def run_name(folder: Path, roots: list[Path]) -> str:
    """A short, unique-enough name: the run folder relative to the given root."""
    run = folder.parent if folder.name in {"tensorboard", "csv"} else folder
    for root in roots:
        if root in run.parents:
            name = str(run.relative_to(root))
            return f"{root.name}/{name}" if len(roots) > 1 else name
    return run.name
