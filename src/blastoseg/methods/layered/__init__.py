"""Layered visible + occluded embeddings (`method`) and their clustering (`cluster`)."""

from blastoseg.methods.layered.method import METHOD

__all__ = ["METHOD"]
