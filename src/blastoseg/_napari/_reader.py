"""npe2 reader for `*_amodal.tif` packed layered labels (see docs/data-formats.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from blastoseg._napari import layers as L
from blastoseg.io import read_amodal

SUFFIXES = ("_amodal.tif", "_amodal.tiff")


def get_reader(path: str | list[str]) -> Callable[[str], list[L.LayerData]] | None:
    """napari's reader hook: a reader for `*_amodal.tif` files, else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    return read_layers if str(path).lower().endswith(SUFFIXES) else None


def read_layers(path: str | list[str]) -> list[L.LayerData]:
    """One packed Labels layer: (L, H, W) for a frame, (T, L, H, W) for a time-lapse; scores,
    depth and provenance go to its metadata so writing it back loses nothing."""
    path = Path(path[0] if isinstance(path, list) else path)
    frames, provenance = read_amodal(path)
    planes = [f.layered(np.uint16) for f in frames]
    data = np.zeros((len(frames), max(p.shape[0] for p in planes), *frames[0].shape), np.uint16)
    for t, p in enumerate(planes):
        data[t, : p.shape[0]] = p
    name = path.name[: -len(next(s for s in SUFFIXES if path.name.lower().endswith(s)))]
    meta = {
        "source": provenance.get("image", name), "role": "packed", "run": L.new_run_id(), "n_frames": len(frames),
        "frames": [{"scores": f.scores.tolist(), "depth": f.depth.tolist()} for f in frames],
        **{k: v for k, v in provenance.items() if k in ("method", "model", "model_sha256")},
    }
    return [(data[0] if len(frames) == 1 else data, {"name": f"{name} cells (packed)", "metadata": {L.KEY: meta}, "opacity": 0.5}, "labels")]
