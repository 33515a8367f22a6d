"""Reading logged scalars back for ``scripts/plot.py``: TensorBoard event files or CSV.

A run logged with ``logger=csv`` has a CSVLogger ``metrics.csv`` instead of event files;
both read into the same per-epoch curves. A run with both is read from TensorBoard.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.util import tensor_util

Curves = dict[str, list[tuple[float, float]]]
"""Per tag, the (epoch, value) points of one run."""


EVENT_FILES = "events.out.tfevents.*"
CSV_FILE = "metrics.csv"


def run_of(folder: Path) -> Path:
    """The run dir a logger folder belongs to (``<run>/tensorboard``, ``<run>/csv``)."""
    return folder.parent if folder.name in {"tensorboard", "csv"} else folder


def find_runs(paths: list[Path]) -> list[Path]:
    """Every folder under ``paths`` with logged scalars: event files, else a metrics.csv."""
    events = {file.parent for path in paths for file in path.rglob(EVENT_FILES)}
    tables = {file.parent for path in paths for file in path.rglob(CSV_FILE)}
    runs_with_events = {run_of(folder) for folder in events}
    return sorted(events | {f for f in tables if run_of(f) not in runs_with_events})


def read_scalars(folder: Path) -> Curves:
    """All scalars of one run, indexed by epoch (Lightning logs ``epoch`` at each step)."""
    if not any(folder.glob(EVENT_FILES)) and (folder / CSV_FILE).is_file():
        return _read_csv(folder / CSV_FILE)
    by_tag: dict[str, dict[int, float]] = defaultdict(dict)
    for file in sorted(folder.glob(EVENT_FILES)):
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


def _read_csv(file: Path) -> Curves:
    """A CSVLogger table: one row per logging call, blank where a tag was not logged."""
    curves: Curves = defaultdict(list)
    with file.open(newline="") as table:
        for row in csv.DictReader(table):
            if not row.get("epoch"):  # per-step rows logged without an epoch
                continue
            epoch = int(float(row["epoch"])) + 1
            for tag, value in row.items():
                if tag not in {"epoch", "step"} and value not in (None, ""):
                    curves[tag].append((epoch, float(value)))
    return dict(curves)


def run_name(folder: Path, roots: list[Path]) -> str:
    """A short, unique-enough name: the run folder relative to the given root."""
    run = run_of(folder)
    for root in roots:
        if root in run.parents:
            name = str(run.relative_to(root))
            return f"{root.name}/{name}" if len(roots) > 1 else name
    return run.name
