"""`python scripts/plot.py ...` is `litnets plot ...`; see `litnets plot --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["plot", *sys.argv[1:]]))
