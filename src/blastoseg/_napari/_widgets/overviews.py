"""A run's overview: finding the cell under the cursor, going to a cell, and redrawing it after edits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from blastoseg._napari import layers as L
from blastoseg._napari.cells import draw_overview, outline_width


def centre_on(viewer: Any, layer: Any, frame: int = -1) -> None:
    """Move the view to the cell in `layer` (to `frame` in a time-lapse, else its first)."""
    data = np.asarray(layer.data)
    if data.ndim == 3:
        first = int(L.tag(layer).get("first_frame", 0))
        k = frame - first if 0 <= frame - first < len(data) else int(np.argmax(data.reshape(len(data), -1).any(1)))
        plane, prefix = data[k], [k]
    else:
        plane, prefix = data, []
    ys, xs = np.nonzero(plane)
    if ys.size == 0:
        return
    world = layer.data_to_world([*prefix, ys.mean(), xs.mean()])
    if prefix:
        viewer.dims.set_point(0, world[0])
    viewer.camera.center = tuple(world[-2:])


def cell_at(run: L.Run, world: Sequence[float]) -> int | None:
    """The front-most cell of `run` at the world position, or None."""
    hits = []
    for layer in run.cells:
        data = np.asarray(layer.data)
        index = np.round(layer.world_to_data(world)[-data.ndim:]).astype(int)
        if np.any(index < 0) or np.any(index >= data.shape):
            continue
        if data[tuple(index)]:
            depth = L.tag(layer).get("depth")
            if isinstance(depth, list):
                depth = depth[index[0]] if data.ndim == 3 else None
            hits.append((1e6 if depth is None else depth, int(L.tag(layer)["cell"])))
    return min(hits)[1] if hits else None


def atom_frames(atom: Any) -> set[int] | None:
    """The first-axis indices a napari undo atom changed: a masked atom has a box
    (`slice_key`), an index atom (indices, old, new) the indices; None if unknown."""
    key = getattr(atom, "slice_key", None)
    if key is not None and isinstance(key[0], slice):
        return set(range(key[0].start or 0, key[0].stop))
    if isinstance(atom, tuple) and atom and isinstance(atom[0], tuple) and atom[0]:
        return {int(t) for t in np.unique(np.asarray(atom[0][0]))}
    return None


def redraw_overview(overview: Any, cells: Sequence[Any], frames: set[int] | None = None) -> None:
    """Redraw the outlines of `cells` in `overview` on `frames` (None = all)."""
    data = overview.data
    timelapse = data.ndim == 3
    n_frames = len(data) if timelapse else 1
    frames = set(range(n_frames)) if frames is None else {t for t in frames if 0 <= t < n_frames}
    largest = max((int(L.tag(x).get("cell", 0)) for x in cells), default=0)
    if largest > np.iinfo(data.dtype).max:
        overview.data = data = data.astype(np.uint16)
    width = outline_width(data.shape)
    for t in sorted(frames):
        parts = []
        for layer in cells:
            info, cell_data = L.tag(layer), np.asarray(layer.data)
            first = int(info.get("first_frame", 0))
            if cell_data.ndim == 3:
                if not first <= t < first + len(cell_data):
                    continue
                mask, depth = cell_data[t - first] != 0, info.get("depth")
                depth = depth[t - first] if isinstance(depth, list) else depth
            else:
                mask, depth = cell_data != 0, info.get("depth")
            parts.append((int(info.get("cell", 1)), 1e6 if depth is None else float(depth), mask))
        plane = np.zeros(data.shape[-2:], data.dtype)
        draw_overview(plane, parts, width)
        if timelapse:
            data[t] = plane
        else:
            data[...] = plane
    overview.refresh()
