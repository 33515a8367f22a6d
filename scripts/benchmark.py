"""`python scripts/benchmark.py ...` is `litnets benchmark ...`; see `litnets benchmark --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
