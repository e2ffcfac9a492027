"""Instances <-> napari layer data, and the links between result layers and their image.

Every layer blastoseg makes carries `metadata["blastoseg"]` = {"source": image layer
name, "role": "cell" | "visible" | "overlaps" | "packed", "run": id of the
segmentation run, "n_frames", "method", "model_sha256", ...}. Cell layers add "cell"
(the label it is painted with, also its label in the visible layer), "confidence" and
"depth". Nothing here imports napari: layers are read through `.name`, `.data`,
`.metadata` (and `.scale`), so plain records work as well (the writer uses that).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blastoseg.instances import Instances

KEY = "blastoseg"
LayerData = tuple[Any, dict[str, Any], str]


@dataclass
class LabelSource:
    """The parts of a Labels layer the conversions need."""

    name: str
    data: Any
    metadata: dict[str, Any] = field(default_factory=dict)


def tag(layer: Any) -> dict[str, Any]:
    """The blastoseg metadata of a layer ({} for a user's own layer)."""
    meta = getattr(layer, "metadata", None) or {}
    value = meta.get(KEY) if isinstance(meta, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


# ---------------------------------------------------------------------- results -> layers
def result_layers(
    frames: Sequence[Instances],
    image_name: str,
    provenance: Mapping[str, Any],
    run: str,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    zona: np.ndarray | None = None,
    fragments: np.ndarray | None = None,
) -> list[LayerData]:
    """New layers for a segmentation: per-cell layers (one frame) or one packed layer (stack),
    then visible cells and overlaps, and the zona (1 = ring, 2 = inside) and fragments
    (a label each) label images (T, H, W) when given. Front-most cells come last so
    napari draws them on top."""
    n_frames = len(frames)
    base = {"source": image_name, "run": run, "n_frames": n_frames, **provenance}
    geom = {k: list(v) for k, v in (("scale", scale), ("translate", translate)) if v is not None}
    layers: list[LayerData] = []
    if n_frames == 1:
        inst = frames[0]
        for i in inst.front_order()[::-1]:
            data = np.zeros(inst.shape, np.uint16)
            y0, x0, y1, x1 = inst.boxes[i]
            data[y0:y1, x0:x1][inst.masks[i]] = i + 1
            meta = {**base, "role": "cell", "cell": int(i + 1), "confidence": float(inst.scores[i]), "depth": int(inst.depth[i])}
            features = {"index": [i + 1], "confidence": [float(inst.scores[i])]}
            layers.append((data, {"name": f"{image_name} cell {i + 1}", "metadata": {KEY: meta}, "features": features,
                                  "opacity": 0.5, **geom}, "labels"))
    else:
        planes = [f.layered(np.uint16) for f in frames]
        packed = np.zeros((n_frames, max(p.shape[0] for p in planes), *frames[0].shape), np.uint16)
        for t, p in enumerate(planes):
            packed[t, : p.shape[0]] = p
        frame_meta = [{"scores": f.scores.tolist(), "depth": f.depth.tolist()} for f in frames]
        packed_geom = {k: [v[0], 1.0, *v[1:]] if k == "scale" else [v[0], 0.0, *v[1:]] for k, v in geom.items()}
        layers.append((packed, {"name": f"{image_name} cells (packed)", "metadata": {KEY: {**base, "role": "packed", "frames": frame_meta}},
                                "opacity": 0.5, **packed_geom}, "labels"))
    visible = np.stack([f.visible_labels() for f in frames]).astype(np.uint16)
    overlaps = np.stack([(f.coverage() >= 2) for f in frames]).astype(np.uint8)
    features = _visible_features(frames)
    squeeze = (lambda a: a[0]) if n_frames == 1 else (lambda a: a)
    layers.insert(0, (squeeze(visible), {"name": f"{image_name} visible cells", "metadata": {KEY: {**base, "role": "visible"}},
                                         "features": features, "visible": False, **geom}, "labels"))
    layers.insert(1, (squeeze(overlaps), {"name": f"{image_name} overlaps", "metadata": {KEY: {**base, "role": "overlaps"}},
                                          "opacity": 0.4, "visible": False, **geom}, "labels"))
    extras = [(zona, "zona", {"opacity": 0.25}), (fragments, "fragments", {"opacity": 0.7})]
    for at, (data, role, look) in enumerate((e for e in extras if e[0] is not None), start=2):
        layers.insert(at, (squeeze(np.asarray(data)), {"name": f"{image_name} {role}", "metadata": {KEY: {**base, "role": role}},
                                                       **look, **geom}, "labels"))
    return layers


def _visible_features(frames: Sequence[Instances]) -> dict[str, list]:
    # Labels features are looked up by label value; a stack shares one table, so it
    # holds the first frame's scores only when frames disagree on a label's score.
    scores: dict[int, float] = {}
    for f in frames:
        for i, s in enumerate(f.scores):
            scores.setdefault(i + 1, float(s))
    return {"index": [0, *scores], "confidence": [float("nan"), *scores.values()]}


def empty_cell_layer(image_name: str, shape: tuple[int, ...], cell: int, run: str, n_frames: int,
                     scale: Sequence[float] | None = None, translate: Sequence[float] | None = None) -> LayerData:
    """An empty amodal cell layer, painted with label `cell`, linked to the image."""
    meta = {"source": image_name, "role": "cell", "cell": cell, "run": run, "n_frames": n_frames, "confidence": 1.0, "added": True}
    geom = {k: list(v) for k, v in (("scale", scale), ("translate", translate)) if v is not None}
    return np.zeros(shape, np.uint16), {"name": f"{image_name} cell {cell}", "metadata": {KEY: meta}, "opacity": 0.5, **geom}, "labels"


# ---------------------------------------------------------------------- layers -> instances
def linked_layers(layers: Iterable[Any], image_name: str) -> list[Any]:
    """The result layers of `image_name`'s newest segmentation run (the topmost in the list),
    in layer-list order; cells added by hand belong to the run they were added to."""
    linked = [layer for layer in layers if tag(layer).get("source") == image_name and tag(layer).get("role") in ("cell", "packed", "visible")]
    if not linked:
        return []
    newest = tag(linked[-1]).get("run")
    return [layer for layer in linked if tag(layer).get("run") == newest]


def _layer_instances(layer: Any, n_frames: int, frame_shape: tuple[int, int]) -> list[tuple[Instances, list[int]]]:
    """The instances of one layer per frame, with their label numbers; see `cells_from_layers`."""
    info, name = tag(layer), getattr(layer, "name", "labels")
    data = np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer.data)
    if data.dtype.kind not in "biu":
        raise ValueError(f"layer {name!r} does not hold integer labels (dtype {data.dtype})")
    if tuple(data.shape[-2:]) != tuple(frame_shape):
        raise ValueError(f"layer {name!r} is {data.shape[-2]}x{data.shape[-1]} pixels but the image is "
                         f"{frame_shape[0]}x{frame_shape[1]}; pick labels made for this image")
    per_frame = data.ndim == 4 or (data.ndim == 3 and n_frames > 1)
    if per_frame and data.shape[0] != n_frames:
        raise ValueError(f"layer {name!r} has {data.shape[0]} frames but the image has {n_frames}")
    if data.ndim not in (2, 3, 4) or (not per_frame and n_frames != 1):
        raise ValueError(f"layer {name!r} has shape {data.shape}, which does not fit an image of "
                         f"{n_frames} frame(s) of {frame_shape}; expected (H, W), (L, H, W), (T, H, W) or (T, L, H, W)")
    stack = data if per_frame else data[None]
    metas = info.get("frames") if info.get("role") == "packed" else None
    out = []
    for t, frame in enumerate(stack):
        if info.get("role") == "cell":
            inst = Instances.from_masks(frame_shape, [((0, 0, *frame_shape), frame != 0)], scores=[info.get("confidence", 1.0)])
            out.append((inst, [int(info.get("cell", 1))] * len(inst)))
            continue
        if frame.ndim == 3 or metas:
            inst = _from_packed(frame, metas[t] if metas and t < len(metas) else None)
        else:
            inst = Instances.from_label_image(frame)
        values = np.unique(frame)
        out.append((inst, [int(v) for v in values[values != 0]]))
    return out


def _from_packed(planes: np.ndarray, meta: Mapping[str, Any] | None) -> Instances:
    values = np.unique(planes)
    values = values[values != 0].astype(np.int64)
    if meta and values.size and values.max() <= len(meta["scores"]):
        # Labels are i+1 of the stored order; a cell erased by the user must not shift the rest.
        return Instances.from_layered(planes, np.asarray(meta["scores"])[values - 1], np.asarray(meta["depth"])[values - 1])
    return Instances.from_layered(planes)


def instances_from_layers(layers: Sequence[Any], n_frames: int, frame_shape: tuple[int, int]) -> list[Instances]:
    """Amodal instances per frame from Labels layers; see `cells_from_layers`."""
    return cells_from_layers(layers, n_frames, frame_shape)[0]


def cells_from_layers(layers: Sequence[Any], n_frames: int, frame_shape: tuple[int, int]) -> tuple[list[Instances], list[list[int]]]:
    """Amodal instances per frame from Labels layers (bottom to top), and each cell's number.

    A blastoseg cell layer is one cell (any label), numbered as its layer; a 2D layer is
    a label image (one cell per label); a 3D layer is packed planes (L, H, W) for a
    single image or label images (T, H, W) for a time-lapse; 4D is packed (T, L, H, W).
    Cells are numbered by their label and ordered by number (1..n if numbers repeat).
    Where cells overlap, a linked "visible" layer decides who is in front; otherwise a
    higher layer is nearer, and within a layer its own depth (or the lower label) is.
    """
    visible = [layer for layer in layers if tag(layer).get("role") == "visible"]
    cells = [layer for layer in layers if tag(layer).get("role") not in ("visible", "overlaps")]
    frames: list[list[tuple[Instances, list[int]]]] = [[] for _ in range(n_frames)]
    for rank, layer in enumerate(reversed(cells)):
        for t, (inst, labels) in enumerate(_layer_instances(layer, n_frames, frame_shape)):
            frames[t].append((inst.with_depth(_dense(inst.depth) + rank * 100_000), labels))
    out, numbers = [], []
    for t, parts in enumerate(frames):
        inst = Instances.concatenate([p for p, _ in parts], shape=frame_shape)
        ids = [label for _, labels in parts for label in labels]
        inst = inst.with_depth(_dense(inst.depth))
        if visible and all(tag(layer).get("role") == "cell" for layer in cells):
            vis = np.asarray(visible[-1].data)
            vis = vis[t] if vis.ndim == 3 else vis
            if vis.shape == tuple(frame_shape):
                inst = inst.with_depth(depth_from_visible(inst, vis, ids))
        if len(set(ids)) == len(ids):
            order = np.argsort(ids, kind="stable")
            inst, ids = inst[order] if len(inst) else inst, [ids[k] for k in order]
        else:
            ids = list(range(1, len(inst) + 1))
        out.append(inst)
        numbers.append([int(k) for k in ids])
    return out, numbers


def _dense(depth: np.ndarray) -> np.ndarray:
    return np.unique(depth, return_inverse=True)[1].astype(np.int32).reshape(-1) if len(depth) else depth


def depth_from_visible(instances: Instances, visible: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Depth order in which a cell is in front of another if the visible layer shows it on more
    of their common pixels; ties keep the current depth (layer order)."""
    n = len(instances)
    wins = np.zeros((n, n), np.int64)
    full = instances.to_mask_stack()
    for i, j in ((i, j) for i in range(n) for j in range(n) if i != j):
        common = full[i] & full[j]
        wins[i, j] = np.count_nonzero(visible[common] == labels[i])
    behind = (wins.T > wins).sum(1)
    order = np.lexsort((instances.depth, behind))
    depth = np.empty(n, np.int32)
    depth[order] = np.arange(n, dtype=np.int32)
    return depth
