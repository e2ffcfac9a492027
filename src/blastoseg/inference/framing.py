"""Framing: the square window of a frame that shows its objects at the scale a model knows.

Embryos are filmed at many magnifications: the same 8-cell embryo may span 40 % or 95 %
of a frame. Embryo models see whole frames shrunk to a small working size, so a small
embryo's blastomeres reach the network a few pixels across and its hidden ones are lost.
A model whose pipeline has a `frame_fill` f is shown, instead, the square window around its objects in
which their bounding box spans the fraction f of the window's side: at inference around
the objects a first, quick pass found (`predict`), in training around the annotated ones
(`training.sources`), so that both see embryos at one scale. Measurements are in
docs/benchmarks.md ("Framing the embryo").
"""

from __future__ import annotations

import numpy as np

from blastoseg.instances import Instances

MIN_GAIN = 0.9  # a window above this fraction of the frame's shorter side is not worth a pass


def objects_box(instances: Instances, shape: tuple[int, int] | None = None) -> tuple[int, int, int, int] | None:
    """(y0, x0, y1, x1) around all the instances, or None when there are none; in the
    coordinates of an image of `shape` (default: theirs), rounded outwards as
    `Instances.resized` rounds boxes, so no mask needs resizing to find it."""
    if not len(instances):
        return None
    y0, x0 = instances.boxes[:, :2].min(0)
    y1, x1 = instances.boxes[:, 2:].max(0)
    if shape is None or tuple(shape) == instances.shape:
        return int(y0), int(x0), int(y1), int(x1)
    fy, fx = shape[0] / instances.shape[0], shape[1] / instances.shape[1]
    return int(np.floor(y0 * fy)), int(np.floor(x0 * fx)), min(int(np.ceil(y1 * fy)), shape[0]), min(int(np.ceil(x1 * fx)), shape[1])


def window(
    box: tuple[int, int, int, int], shape: tuple[int, int], fill: float, shift: tuple[float, float] = (0.0, 0.0)
) -> tuple[int, int, int, int] | None:
    """The square (y0, x0, y1, x1) in which `box` spans `fill` of the side, centred on the
    box (moved by `shift` x the side), pushed inside the frame; None when that square would
    be nearly the whole frame, so that framing gains nothing."""
    if not 0 < fill <= 1:
        raise ValueError(f"frame_fill must be in (0, 1], got {fill}")
    y0, x0, y1, x1 = box
    h, w = shape
    side = max(int(round(max(y1 - y0, x1 - x0) / fill)), 16)
    if side >= MIN_GAIN * min(h, w):
        return None
    cy, cx = (y0 + y1) / 2 + shift[0] * side, (x0 + x1) / 2 + shift[1] * side
    top = int(np.clip(round(cy - side / 2), 0, h - side))
    left = int(np.clip(round(cx - side / 2), 0, w - side))
    return top, left, top + side, left + side


def framed(image: np.ndarray, instances: Instances, fill: float, rng: np.random.Generator | None = None) -> tuple[np.ndarray, Instances]:
    """A training pair cut to the window its instances call for (`window`); with `rng`, the
    fill and centre jitter as a first pass's box does (cells missed or fragments taken)."""
    box = objects_box(instances)
    if box is None:
        return image, instances
    shift = (0.0, 0.0)
    if rng is not None:
        fill = float(np.clip(fill * np.exp(rng.normal(0, 0.12)), 0.3, 1.0))
        shift = tuple(rng.normal(0, 0.04, 2))
    win = window(box, image.shape, fill, shift)
    if win is None:
        return image, instances
    y0, x0, y1, x1 = win
    return image[y0:y1, x0:x1], instances.cropped(y0, x0, y1, x1)
