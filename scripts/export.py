"""`python scripts/export.py ...` is `litnets export ...`; see `litnets export --help`."""

import sys

from litnets.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
