"""`python scripts/train.py ...` is `litnets train ...`; see `litnets train --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
