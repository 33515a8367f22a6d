"""`python scripts/predict.py ...` is `litnets predict ...`; see `litnets predict --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
