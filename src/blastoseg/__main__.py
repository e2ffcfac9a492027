"""`python -m blastoseg`: the command line."""

import sys

from blastoseg.cli import main

# Guarded: Dask's worker processes start by importing the parent's main module.
if __name__ == "__main__":
    sys.exit(main())
