"""The outlined triangles, rectangles and circles of seed paper 002 (section 3)."""

from __future__ import annotations

import numpy as np

from blastoseg.instances import Instances
from blastoseg.synth.scene import Sample, Seed, as_rng

TRIANGLE, RECTANGLE, CIRCLE = 0, 1, 2
# Fixed sizes (pixels): 18 shapes add up to ~56% of a 256 x 256 canvas, crowded enough
# that most shapes overlap a neighbour, sparse enough that each stays visible.
TRIANGLE_SIDE = 64.0
RECTANGLE_SIZE = (40.0, 64.0)
CIRCLE_RADIUS = 24.0
OUTLINE_WIDTH = 2.0


# ---------------------------------------------------------------------- outlined shapes
def _shape_sdf(kind: int, dy: np.ndarray, dx: np.ndarray, angle: float) -> np.ndarray:
    """Inside distance to the boundary (negative outside); exact inside a convex shape."""
    if kind == CIRCLE:
        return CIRCLE_RADIUS - np.hypot(dy, dx)
    if kind == TRIANGLE:
        normals = angle + 2 * np.pi * np.arange(3) / 3
        offsets = np.full(3, TRIANGLE_SIDE / (2 * np.sqrt(3)))  # inradius
    else:
        normals = angle + np.pi / 2 * np.arange(4)
        h, w = RECTANGLE_SIZE
        offsets = np.array([w / 2, h / 2, w / 2, h / 2])
    # A convex polygon is the intersection of half-planes n.p <= offset.
    return np.min(
        [o - (np.cos(a) * dx + np.sin(a) * dy) for a, o in zip(normals, offsets)], axis=0
    )


def _circumradius(kind: int) -> float:
    if kind == CIRCLE:
        return CIRCLE_RADIUS
    if kind == TRIANGLE:
        return TRIANGLE_SIDE / np.sqrt(3)
    return float(np.hypot(*RECTANGLE_SIZE) / 2)


def min_canvas() -> int:
    """The smallest canvas side on which every shape fits wholly inside, with its margin."""
    return int(np.ceil(2 * max(_circumradius(k) for k in (TRIANGLE, RECTANGLE, CIRCLE)) + 3))


def shapes_scene(
    rng: np.random.Generator,
    n_per_class: int = 6,
    size: int = 256,
    fill: float = 1.0,
    min_visible: float = 0.2,
    tries: int = 30,
) -> tuple[np.ndarray, Instances, np.ndarray]:
    """(image, instances, classes) of 3 * n_per_class opaque outlined shapes.

    Shapes are placed back to front; each new (nearer) shape is re-drawn up to `tries`
    times until every shape behind it keeps at least `min_visible` of its area visible.
    """
    smallest = min_canvas()
    if size < smallest:
        raise ValueError(f"synthetic shapes need a canvas of at least {smallest} px (the shapes are fixed in size); got {size}")
    classes = np.repeat(np.array([TRIANGLE, RECTANGLE, CIRCLE]), n_per_class)
    n = len(classes)
    depth = rng.permutation(n).astype(np.int32)
    image = np.full((size, size), fill, np.float32)
    labels = np.zeros((size, size), np.int32)
    areas = np.zeros(n + 1, np.int64)
    boxes, masks = [None] * n, [None] * n
    for i in np.argsort(-depth, kind="stable"):  # back-most first
        kind = int(classes[i])
        rad = _circumradius(kind)
        lo, hi = rad + 1, size - rad - 1
        for _ in range(tries):
            cy, cx = rng.uniform(lo, hi, 2)
            angle = rng.uniform(0, 2 * np.pi)
            y0, x0 = int(np.floor(cy - rad)), int(np.floor(cx - rad))
            y1, x1 = int(np.ceil(cy + rad)) + 1, int(np.ceil(cx + rad)) + 1
            dy = np.arange(y0, y1)[:, None] - cy
            dx = np.arange(x0, x1)[None, :] - cx
            sdf = _shape_sdf(kind, dy, dx, angle)
            mask = sdf >= 0
            hidden = np.bincount(labels[y0:y1, x0:x1][mask], minlength=n + 1)
            visible = np.bincount(labels.ravel(), minlength=n + 1) - hidden
            placed = areas > 0
            if np.all(visible[placed] >= min_visible * areas[placed]):
                break
        boxes[i], masks[i] = (y0, x0, y1, x1), mask
        areas[i + 1] = mask.sum()
        labels[y0:y1, x0:x1][mask] = i + 1
        crop = image[y0:y1, x0:x1]
        crop[mask] = fill
        crop[mask & (sdf < OUTLINE_WIDTH)] = 0.0
    inst = Instances.from_masks((size, size), list(zip(boxes, masks)), depth=depth)
    return image, inst, classes


def synth_shapes(n_per_class: int = 6, size: int = 256, seed: Seed = None, fill: float = 1.0) -> Sample:
    """Seed paper 002's shapes: opaque triangles, rectangles and circles as 2-px black outlines.

    Shapes share the background colour `fill`, so only outlines tell them apart; nearer
    shapes hide the outlines behind them. Sizes are fixed per class (equilateral triangle
    of side 64, 40 x 64 rectangle, circle of radius 24 pixels): 18 of them add up to ~56%
    of a 256 x 256 canvas, so most shapes overlap a neighbour yet few vanish. Location
    (shape wholly inside the canvas), rotation and depth order are random; a shape is
    re-drawn (up to 30 times) while it would leave one behind it less than 20% visible.
    classes: 0 triangle, 1 rectangle, 2 circle. Masks are the filled shapes, outline included.
    """
    image, inst, classes = shapes_scene(as_rng(seed), n_per_class, size, fill)
    return Sample(image, inst, np.zeros((size, size), bool), classes)
