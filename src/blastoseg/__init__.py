"""blastoseg: amodal instance segmentation and measurement of embryo blastomeres.

Importing the package is deliberately cheap: torch and napari are imported only by
the modules that need them, so napari's start-up and the CLI stay fast. `segment`,
`segment_frames` and `segment_file` are loaded on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# Even Instances is loaded on first use: it imports scipy, which `blastoseg --help` does not need.
_LAZY = {
    "Instances": "blastoseg.instances",
    "segment": "blastoseg.inference.predict",
    "segment_frames": "blastoseg.inference.predict",
    "segment_file": "blastoseg.files",
    "measure_files": "blastoseg.files",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'blastoseg' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
