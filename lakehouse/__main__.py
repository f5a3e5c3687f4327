"""`python -m lakehouse`: the same as the `lakehouse` console script."""

import sys

from lakehouse.cli import main

if __name__ == "__main__":  # not when a spawned child process imports it
    sys.exit(main())
