"""Registry of segmentation methods by name (importing it does not import torch)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blastoseg.methods.base import Method

_MODULES = {
    "embedseg": "blastoseg.methods.embedseg",
    "fcrnet": "blastoseg.methods.fcrnet",
    "layered": "blastoseg.methods.layered",
    "vqshape": "blastoseg.methods.vqshape",
}


def method_names() -> list[str]:
    return sorted(_MODULES)


def get_method(name: str) -> Method:
    """The method object registered as `name`."""
    if name not in _MODULES:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(method_names())}")
    return importlib.import_module(_MODULES[name]).METHOD


__all__ = ["get_method", "method_names"]
