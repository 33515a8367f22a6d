"""``litnets plot <run dir or logs dir> [...]``: learning curves as PNG files.

One figure per run (``<run>/curves.png``), or with ``--overlay`` one figure comparing every
run found (``--output``, default ``curves.png`` in the first folder given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from litnets.curves import find_runs, read_scalars, run_name, run_of
    from litnets.plots import learning_curves

    parser = argparse.ArgumentParser(prog="litnets plot", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, multirun dirs or log dirs")
    parser.add_argument("--overlay", action="store_true", help="all runs in one figure")
    parser.add_argument("--output", type=Path, help="the PNG to write with --overlay")
    args = parser.parse_args(argv)
    roots = [p.resolve() for p in args.paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        print(f"litnets: error: not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    folders = find_runs(roots)
    if not folders:
        print(
            f"litnets: error: no logged scalars (TensorBoard event files or metrics.csv) "
            f"under {', '.join(map(str, roots))}",
            file=sys.stderr,
        )
        return 2
    runs = {run_name(folder, roots): read_scalars(folder) for folder in folders}
    if args.overlay:
        targets = [(args.output or roots[0] / "curves.png", runs)]
    else:
        targets = [
            (run_of(folder) / "curves.png", {name: curves})
            for folder, (name, curves) in zip(folders, runs.items(), strict=True)
        ]
    for path, selection in targets:
        figure = learning_curves(selection)
        figure.savefig(path, dpi=100)
        print(f"litnets: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
