"""`python scripts/eval.py ...` is `litnets eval ...`; see `litnets eval --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
