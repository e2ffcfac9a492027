"""Object size: the range a model was trained on, and the rescaling that brings a frame's
objects into it.

A network learns objects at the sizes its training images show them; nuclei three times
larger than any it has seen come out as fragments or not at all. Training records the
per-image median diameter of its objects (`train.record_training_sizes`); `predict`
measures the objects it found and, when their median is above that range, segments the
frame again, shrunk just enough to bring them inside it (`target_scale`), and again if
the objects found then are still too large: a model that breaks objects too large for it
into fragments underestimates their size the first time.

Frames are only ever shrunk. A first pass that finds objects far smaller than the
training range is as likely to be splitting texture or noise into false positives as to
be seeing small cells; enlarging such a frame multiplied them on the one DSB test image
where it happened (a brightfield frame: AP_dsb@0.5 0.24 -> 0.04) and its cost by the
square of the factor (1.6 s -> 57 s). `docs/benchmarks.md` has the measurements.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from blastoseg.instances import Instances

MIN_OBJECTS = 3  # a median of fewer objects says little about their size
MIN_SPREAD = 1.5  # the range spans at least median / 1.5 .. median x 1.5 (one training image)
INSIDE = 1.2  # a rescaled frame's objects land this far inside the range's edge
SMALLEST_SCALE = 0.25  # of the whole rescaling, over all passes
MAX_PASSES = 3  # rescaled passes per frame


def median_diameter(instances: Instances) -> float:
    """Median equivalent diameter (of a disc with the same area) of the instances, in pixels."""
    return float(np.median(np.sqrt(4 * np.asarray(instances.areas(), float) / np.pi))) if len(instances) else float("nan")


def training_sizes(instance_sets: Iterable[Instances]) -> dict[str, float | list[float]]:
    """The sizes a model trained on these images knows: the median over images of their
    median object diameter, and the 5th..95th percentile range of those, at least MIN_SPREAD wide."""
    per_image = np.array([median_diameter(s) for s in instance_sets if len(s)])
    if not len(per_image):
        raise ValueError("no objects in the training images, so no object size to record")
    median = float(np.median(per_image))
    low, high = np.percentile(per_image, [5, 95])
    low, high = min(low, median / MIN_SPREAD), max(high, median * MIN_SPREAD)
    return {"median": round(median, 2), "range": [round(float(low), 2), round(float(high), 2)]}


def target_scale(found: Instances, sizes: dict | None, scale: float = 1.0) -> float:
    """The scale of the whole frame that brings the objects found at `scale` just inside the
    top of the training range `sizes` (the pipeline's `object_diameters`, in model-input
    pixels; INSIDE of its edge), never below SMALLEST_SCALE: `scale` itself when the model
    has no recorded sizes, fewer than MIN_OBJECTS were found, or they are not too large."""
    if not sizes or len(found) < MIN_OBJECTS:
        return scale
    diameter, high = median_diameter(found), sizes["range"][1]
    if diameter <= high:
        return scale
    return max(scale * high / INSIDE / diameter, SMALLEST_SCALE)
