"""npe2 writer: blastoseg's Labels layers -> one `*_amodal.tif` (see docs/data-formats.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blastoseg._napari import layers as L
from blastoseg.io import write_amodal


def _frame_layout(layers: Sequence[L.LabelSource]) -> tuple[int, tuple[int, int]]:
    """Number of frames and frame shape of the layers to write (a 3D layer is (L, H, W)
    unless blastoseg's metadata says it belongs to a time-lapse)."""
    counts = {int(L.tag(x).get("n_frames")) for x in layers if L.tag(x).get("n_frames")}
    counts |= {int(np.shape(x.data)[0]) for x in layers if np.ndim(x.data) == 4}
    if len(counts) > 1:
        raise ValueError(f"the layers to save disagree on the number of frames ({sorted(counts)}); save them separately")
    shapes = {tuple(np.shape(x.data)[-2:]) for x in layers}
    if len(shapes) != 1:
        raise ValueError(f"the layers to save have different sizes {sorted(shapes)}; save them separately")
    return (counts.pop() if counts else 1), shapes.pop()


def write_amodal_layers(path: str, layer_data: list[tuple[Any, dict, str]]) -> list[str]:
    """npe2 writer: Labels layers (bottom to top) -> one `_amodal.tif` with every cell.

    Overlapping cells from different layers are kept whole; depth is the one the cell
    layers record, else the layers' order (higher = nearer).
    """
    sources = [L.LabelSource(meta.get("name", "labels"), np.asarray(data), dict(meta.get("metadata") or {})) for data, meta, _ in layer_data]
    sources = [s for s in sources if L.tag(s).get("role") not in L.DISPLAY_ONLY]
    if not sources:
        raise ValueError("nothing to save: select the cell layers of a result (an overview, zona or fragments layer holds no cells)")
    n_frames, shape = _frame_layout(sources)
    frames = L.instances_from_layers(sources, n_frames, shape)
    info = next((L.tag(s) for s in sources if L.tag(s).get("method")), {})
    provenance = {k: str(info[k]) for k in ("method", "model", "model_sha256") if k in info}
    source = next((L.tag(s).get("source") for s in sources if L.tag(s).get("source")), None)
    if source:
        provenance["image"] = str(source)
    out = Path(path)
    if not out.name.lower().endswith((".tif", ".tiff")):
        out = out.with_name(out.name + "_amodal.tif")
    return [str(write_amodal(out, frames[0] if n_frames == 1 else frames, provenance))]
