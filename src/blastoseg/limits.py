"""The pixel budget: how large an image blastoseg agrees to read or make.

A TIFF header can declare 30000 x 30000 pixels in a file of a few hundred kilobytes
(compressed or sparse); reading it would take gigabytes before any error. Shapes are
checked against the budget before anything is allocated, and the message says how to
raise it on a machine that has the memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

ENV_VAR = "BLASTOSEG_MAX_PIXELS"
# 2**28 px: a 16384 x 16384 frame, or 64 frames of 2048 x 2048; about 1 GiB as float32,
# which segmentation holds once while it works.
DEFAULT_MAX_PIXELS = 2**28


def max_pixels() -> int:
    """The budget in pixels per file: BLASTOSEG_MAX_PIXELS when set, else DEFAULT_MAX_PIXELS."""
    text = os.environ.get(ENV_VAR, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(text))
    except ValueError:
        raise ValueError(f"{ENV_VAR}={text!r} is not a number of pixels; e.g. {ENV_VAR}={DEFAULT_MAX_PIXELS}") from None
    if value < 1:
        raise ValueError(f"{ENV_VAR} must be a positive number of pixels; got {text!r}")
    return value


def check_pixels(shape: Sequence[int], what: str, remedy: str = "crop or split it") -> None:
    """Refuse a `shape` (every axis counted, colour included) over the budget, naming `what`
    and saying what to do (`remedy`, or raise the budget)."""
    n = math.prod(int(s) for s in shape)
    budget = max_pixels()
    if n > budget:
        dims = " x ".join(str(int(s)) for s in shape)
        raise ValueError(
            f"{what} is {dims} = {n:,} pixels, over the limit of {budget:,} per file; "
            f"{remedy}, or raise the limit with the environment variable {ENV_VAR}={n} "
            "if this machine has the memory"
        )
