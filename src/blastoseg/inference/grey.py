"""Frames as the zona stages read them: grey, 0..1 over their own intensity range."""

from __future__ import annotations

import numpy as np


def unit_grey(frame: np.ndarray, user: str) -> np.ndarray | None:
    """A 2D grey (or RGB, averaged) frame as float32 with its 0.5-99.5 % intensity range
    mapped to 0..1 and clipped, so that fixed constants hold for any bit depth; None for
    an empty frame or one with no contrast. `user` names the stage in the error for
    other shapes."""
    a = np.asarray(frame)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].mean(-1)
    if a.ndim != 2:
        raise ValueError(f"{user} wants a 2D frame (grey or RGB), got shape {a.shape}")
    if a.size == 0:
        return None
    a = a.astype(np.float32)
    lo, hi = np.percentile(a, (0.5, 99.5))
    if not hi > lo:
        return None
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)
