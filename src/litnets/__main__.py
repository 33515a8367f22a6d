"""``python -m litnets <command> ...`` is ``litnets <command> ...``."""

import sys

from litnets.cli import main

sys.exit(main())
