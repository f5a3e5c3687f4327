"""`python -m lakehouse`: the same as the `lakehouse` console script."""

import sys

from lakehouse.cli import main

sys.exit(main())
