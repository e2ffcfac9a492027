"""`python -m blastoseg`: the command line."""

import sys

from blastoseg.cli import main

sys.exit(main())
