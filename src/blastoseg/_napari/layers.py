"""Instances <-> napari layer data, and the links between result layers and their image.

A segmentation run of an image gives one group of layers, named "<image> · run N · ..."
and placed together in the layer list (napari has no layer groups), top to bottom:

    <image> · run N · cells        overview: every cell's amodal outline, label = cell number
    <image> · run N · cell 1       one layer per cell: its whole (amodal) extent, painted
    <image> · run N · cell 2         with its number; hidden until picked, edited freely
    ...
    <image> · run N · fragments    when the model finds fragments (a label each)
    <image> · run N · zona         when the embryo was localised (1 = ring, 2 = inside)

Overlapping cells cannot share one label image, so each cell has a layer of its own and
the overview shows only outlines, which can cross. A time-lapse gives the same group
with (T, H, W) layers: the overview, zona and fragments span every frame; a cell's
layer spans the frames from its first to its last (`first_frame`, placed there by the
layer's translate), so every layer lines up with the image at every time point. Cells
are numbered over time by following them from frame to frame (`number_cells`).

Every layer carries `metadata["blastoseg"]` = {"source": image layer name, "role":
"overview" | "cell" | "zona" | "fragments", "run": id of the run, "run_name": "<image> ·
run N", "n_frames", "method", "model", "model_sha256", ...}. A cell layer adds "cell"
(its number), "first_frame", and "confidence" and "depth" (0 = front-most): numbers for
one frame, lists over the layer's frames for a time-lapse (None where the cell is
absent). Nothing here imports napari: layers are read through `.name`, `.data` and
`.metadata`, so plain records work as well (the writer uses that).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blastoseg._napari.cells import draw_overview, number_cells, outline_width
from blastoseg.instances import Instances

KEY = "blastoseg"
SEP = " · "
LayerData = tuple[Any, dict[str, Any], str]
RESULT_ROLES = ("overview", "cell", "zona", "fragments")
CELL_ROLES = ("cell", "packed")  # the layers that hold a run's cells
ZONA_COLOUR = "#f2c14e"  # one colour of its own: cells' label colours start with 1 and 2 too
DISPLAY_ONLY = ("overview", "zona", "fragments", "visible", "overlaps")  # never read as cells


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


def item_tag(item: LayerData) -> dict[str, Any]:
    """The blastoseg metadata of layer data (data, kwargs, kind) not yet made a layer."""
    value = (item[1].get("metadata") or {}).get(KEY)
    return dict(value) if isinstance(value, Mapping) else {}


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def run_name(image_name: str, number: int) -> str:
    return f"{image_name}{SEP}run {number}"


def cell_name(run: str, cell: int) -> str:
    return f"{run}{SEP}cell {cell}"


def label_dtype(largest: int) -> type:
    return np.uint8 if largest <= np.iinfo(np.uint8).max else np.uint16


# ---------------------------------------------------------------------- results -> layers
def result_layers(
    frames: Sequence[Instances],
    image_name: str,
    provenance: Mapping[str, Any],
    run: str,
    name: str | None = None,
    scale: Sequence[float] | None = None,
    translate: Sequence[float] | None = None,
    zona: np.ndarray | None = None,
    fragments: np.ndarray | None = None,
) -> list[LayerData]:
    """The layers of one run, bottom to top as they go in the layer list: zona and
    fragments (label images (T, H, W), when given), the cells from the last number to
    the first, and the overview on top. `name` is the run's name (default
    "<image> · run 1"); `scale` and `translate` are the image layer's."""
    name = name or run_name(image_name, 1)
    n_frames, shape = len(frames), frames[0].shape
    timelapse = n_frames > 1
    numbers = number_cells(frames)
    largest = max((max(ids) for ids in numbers if ids), default=0)
    dtype = label_dtype(largest)
    base = {"source": image_name, "run": run, "run_name": name, "n_frames": n_frames, **provenance}
    ndim = 3 if timelapse else 2
    scale = list(scale)[-ndim:] if scale is not None else [1.0] * ndim
    translate = list(translate)[-ndim:] if translate is not None else [0.0] * ndim
    common = {"scale": scale, "translate": translate, "axis_labels": ("t", "y", "x") if timelapse else ("y", "x")}
    squeeze = (lambda a: a) if timelapse else (lambda a: a[0])

    spans: dict[int, list[int]] = {}  # number -> frames it is in
    where: dict[tuple[int, int], int] = {}  # (number, frame) -> index in that frame
    for t, ids in enumerate(numbers):
        for i, k in enumerate(ids):
            spans.setdefault(k, []).append(t)
            where[k, t] = i

    layers: list[LayerData] = []
    # The zona as outlines (its ring and the space inside it are large regions), fragments filled.
    # ("contour" is drawn by the widgets, napari's add_labels does not take it)
    # only the ring's two edges are drawn (label 2, the space inside, is transparent)
    zona_look = {"opacity": 0.8, "colormap": {None: "transparent", 1: ZONA_COLOUR, 2: "transparent"}}
    extras = [(zona, "zona", zona_look, {"contour": outline_width(shape)}), (fragments, "fragments", {"opacity": 0.7}, {})]
    for data, role, look, drawn in extras:
        if data is not None:
            layers.append((squeeze(np.asarray(data)), {"name": f"{name}{SEP}{role}", "metadata": {KEY: {**base, "role": role, **drawn}},
                                                       **look, **common}, "labels"))

    cells = []
    for k in sorted(spans, reverse=True):
        first, last_t = spans[k][0], spans[k][-1]
        data = np.zeros((last_t - first + 1, *shape), dtype)
        confidence: list[float | None] = []
        depth: list[int | None] = []
        for t in range(first, last_t + 1):
            i = where.get((k, t))
            if i is None:
                confidence.append(None)
                depth.append(None)
                continue
            inst = frames[t]
            y0, x0, y1, x1 = inst.boxes[i]
            data[t - first, y0:y1, x0:x1][inst.masks[i]] = k
            confidence.append(float(inst.scores[i]))
            depth.append(int(inst.depth[i]))
        known = [c for c in confidence if c is not None]
        meta = {**base, "role": "cell", "cell": int(k), "first_frame": int(first),
                "confidence": confidence if timelapse else confidence[0], "depth": depth if timelapse else depth[0]}
        geometry = dict(common)
        if timelapse:
            geometry["translate"] = [translate[0] + first * scale[0], *translate[1:]]
        cells.append((squeeze(data) if not timelapse else data,
                      {"name": cell_name(name, k), "metadata": {KEY: meta}, "opacity": 0.5, "visible": False,
                       "features": {"index": [int(k)], "confidence": [float(np.mean(known))]}, **geometry}, "labels"))
    layers.extend(cells)

    width = outline_width(shape)
    overview = np.zeros((n_frames, *shape), dtype)
    for t, inst in enumerate(frames):
        draw_overview(overview[t], ((numbers[t][i], float(inst.depth[i]), inst.mask(i)) for i in range(len(inst))), width)
    mean_confidence = {k: float(np.mean([frames[t].scores[where[k, t]] for t in spans[k]])) for k in sorted(spans)}
    features = {"index": [0, *mean_confidence], "confidence": [float("nan"), *mean_confidence.values()]}
    layers.append((squeeze(overview), {"name": f"{name}{SEP}cells", "metadata": {KEY: {**base, "role": "overview"}},
                                       "features": features, "opacity": 0.9, **common}, "labels"))
    return layers


def empty_cell_layer(image_name: str, run: str, name: str, shape: tuple[int, ...], cell: int, n_frames: int,
                     scale: Sequence[float] | None = None, translate: Sequence[float] | None = None,
                     data: np.ndarray | None = None, first_frame: int = 0) -> LayerData:
    """A cell layer added by hand to run `run` (named `name`), painted with label `cell`:
    empty over every frame, or `data` (e.g. a drawn shape) starting at `first_frame`."""
    timelapse = n_frames > 1
    if data is None:
        data = np.zeros(shape, label_dtype(cell))
    span = data.shape[0] if timelapse else 1
    meta = {"source": image_name, "role": "cell", "cell": cell, "run": run, "run_name": name, "n_frames": n_frames,
            "first_frame": first_frame, "confidence": [1.0] * span if timelapse else 1.0,
            "depth": [None] * span if timelapse else None, "added": True}
    geometry: dict[str, Any] = {"axis_labels": ("t", "y", "x") if timelapse else ("y", "x")}
    if scale is not None:
        geometry["scale"] = list(scale)
    if translate is not None:
        geometry["translate"] = list(translate)
        if timelapse and first_frame:
            step = geometry.get("scale", [1.0])[0]
            geometry["translate"][0] = translate[0] + first_frame * step
    return data, {"name": cell_name(name, cell), "metadata": {KEY: meta}, "opacity": 0.5, **geometry}, "labels"


# ---------------------------------------------------------------------- runs
@dataclass
class Run:
    """A run's layers as they are in the layer list (bottom to top)."""

    run: str
    name: str
    source: str
    layers: list[Any]

    @property
    def cells(self) -> list[Any]:
        return [x for x in self.layers if tag(x).get("role") in CELL_ROLES]

    @property
    def overview(self) -> Any | None:
        return next((x for x in self.layers if tag(x).get("role") == "overview"), None)

    def role(self, role: str) -> Any | None:
        return next((x for x in self.layers if tag(x).get("role") == role), None)

    @property
    def n_cells(self) -> int:
        return len({int(tag(x).get("cell", 0)) for x in self.cells})


def runs(layers: Iterable[Any], image_name: str | None = None) -> list[Run]:
    """The result runs among `layers` (of `image_name` only, if given), in layer-list order
    of their topmost layer."""
    found: dict[str, Run] = {}
    order: dict[str, int] = {}
    for position, layer in enumerate(layers):
        info = tag(layer)
        if not info.get("run") or info.get("role") not in (*RESULT_ROLES, "packed", "visible", "overlaps"):
            continue
        if image_name is not None and info.get("source") != image_name:
            continue
        run = found.setdefault(info["run"], Run(info["run"], info.get("run_name") or f"{info.get('source', '?')}{SEP}run",
                                                info.get("source", ""), []))
        run.layers.append(layer)
        order[info["run"]] = position
    return sorted(found.values(), key=lambda r: order[r.run])


def next_run_number(layers: Iterable[Any], image_name: str) -> int:
    """1 + the highest run number among `image_name`'s runs (1 for the first)."""
    numbers = [0]
    prefix = f"{image_name}{SEP}run "
    for run in runs(layers, image_name):
        tail = run.name[len(prefix):] if run.name.startswith(prefix) else ""
        if tail.isdigit():
            numbers.append(int(tail))
    return max(numbers) + 1


def linked_layers(layers: Iterable[Any], image_name: str) -> list[Any]:
    """The cell layers of `image_name`'s newest run (the topmost in the list), in
    layer-list order; cells added by hand belong to the run they were added to."""
    found = runs(layers, image_name)
    return found[-1].cells if found else []


# ---------------------------------------------------------------------- layers -> instances
def _array(layer: Any) -> np.ndarray:
    return np.asarray(layer.data[0] if getattr(layer, "multiscale", False) else layer.data)


def _layer_instances(layer: Any, n_frames: int, frame_shape: tuple[int, int]) -> list[list[tuple[Instances, int, float | None]]]:
    """Per frame, the (instance(s), label, depth or None) a layer holds; see `cells_from_layers`."""
    info, name = tag(layer), getattr(layer, "name", "labels")
    data = _array(layer)
    if data.dtype.kind not in "biu":
        raise ValueError(f"layer {name!r} does not hold integer labels (dtype {data.dtype})")
    if tuple(data.shape[-2:]) != tuple(frame_shape):
        raise ValueError(f"layer {name!r} is {data.shape[-2]}x{data.shape[-1]} pixels but the image is "
                         f"{frame_shape[0]}x{frame_shape[1]}; pick labels made for this image")
    out: list[list[tuple[Instances, int, float | None]]] = [[] for _ in range(n_frames)]
    if info.get("role") == "cell":
        first = int(info.get("first_frame", 0))
        stack = data if data.ndim == 3 else data[None]
        if data.ndim not in (2, 3) or first < 0 or first + len(stack) > n_frames or (data.ndim == 2 and n_frames != 1):
            raise ValueError(f"layer {name!r} has shape {data.shape} from frame {first}, which does not fit an image "
                             f"of {n_frames} frame(s) of {frame_shape}")
        confidence, depth = info.get("confidence", 1.0), info.get("depth")
        for k, frame in enumerate(stack):
            score = confidence[k] if isinstance(confidence, list) else confidence
            order = depth[k] if isinstance(depth, list) else depth
            inst = Instances.from_masks(frame_shape, [((0, 0, *frame_shape), frame != 0)],
                                        scores=[1.0 if score is None else score])
            if len(inst):
                out[first + k].append((inst, int(info.get("cell", 1)), None if order is None else float(order)))
        return out
    per_frame = data.ndim == 4 or (data.ndim == 3 and n_frames > 1)
    if per_frame and data.shape[0] != n_frames:
        raise ValueError(f"layer {name!r} has {data.shape[0]} frames but the image has {n_frames}")
    if data.ndim not in (2, 3, 4) or (not per_frame and n_frames != 1):
        raise ValueError(f"layer {name!r} has shape {data.shape}, which does not fit an image of "
                         f"{n_frames} frame(s) of {frame_shape}; expected (H, W), (L, H, W), (T, H, W) or (T, L, H, W)")
    stack = data if per_frame else data[None]
    metas = info.get("frames") if info.get("role") == "packed" else None
    for t, frame in enumerate(stack):
        if frame.ndim == 3 or metas:
            inst = _from_packed(frame, metas[t] if metas and t < len(metas) else None)
        else:
            inst = Instances.from_label_image(frame)
        values = np.unique(frame)
        values = values[values != 0]
        for i in range(len(inst)):
            out[t].append((inst[[i]], int(values[i]), None))
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

    A blastoseg cell layer is one cell, numbered as its layer, over the frames it spans;
    a 2D layer is a label image (one cell per label); a 3D layer is packed planes
    (L, H, W) for a single image or label images (T, H, W) for a time-lapse; 4D is packed
    (T, L, H, W). Overviews, zona and fragments layers are not cells and are skipped.
    Cells are ordered by number (numbered 1..n if numbers repeat). Where cells overlap,
    the depth a cell layer records decides who is in front; cells without one (added by
    hand, or from other layers) are behind those, a higher layer nearer, and within a
    layer its own depth (or the lower label) is.
    """
    cells = [layer for layer in layers if tag(layer).get("role") not in DISPLAY_ONLY]
    frames: list[list[tuple[Instances, int, float]]] = [[] for _ in range(n_frames)]
    for rank, layer in enumerate(reversed(cells)):  # rank 0 = the highest layer
        for t, parts in enumerate(_layer_instances(layer, n_frames, frame_shape)):
            for inst, label, depth in parts:
                key = depth if depth is not None else 1e6 + rank * 1e4 + float(inst.depth[0])
                frames[t].append((inst, label, key))
    out, numbers = [], []
    for parts in frames:
        inst = Instances.concatenate([p for p, _, _ in parts], shape=frame_shape)
        ids = [label for _, label, _ in parts]
        if len(inst):
            inst = inst.with_depth(_dense(np.array([key for _, _, key in parts])))
        if len(set(ids)) == len(ids):
            order = np.argsort(ids, kind="stable")
            inst, ids = inst[order] if len(inst) else inst, [ids[k] for k in order]
        else:
            ids = list(range(1, len(inst) + 1))
        out.append(inst)
        numbers.append([int(k) for k in ids])
    return out, numbers


def _dense(keys: np.ndarray) -> np.ndarray:
    return np.unique(keys, return_inverse=True)[1].astype(np.int32).reshape(-1) if len(keys) else keys.astype(np.int32)
