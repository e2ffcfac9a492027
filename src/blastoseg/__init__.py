"""blastoseg: amodal instance segmentation and measurement of embryo blastomeres.

Importing the package is deliberately cheap: torch and napari are imported only by
the modules that need them, so napari's start-up and the CLI stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"

from blastoseg.instances import Instances

__all__ = ["Instances", "__version__"]
