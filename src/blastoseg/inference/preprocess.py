"""Preparing a frame for a model: validation, normalisation, inversion, working size.

Every door (Python, command line, napari, training) passes frames through these, so a
model sees its input the same way in training and at inference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blastoseg.settings import PipelineSettings

MIN_SIDE = 16


def as_frames(image: np.ndarray, *, rgb: bool | None = None, notify: Callable[[str], None] | None = None) -> np.ndarray:
    """Validate `image` and return float32 frames (T, H, W).

    Accepts (H, W), (H, W, 3|4) RGB(A), (T, H, W) and (T, H, W, 3|4). `rgb=None`
    detects colour from a last axis of 3 or 4; colour is converted to grey and
    `notify` is told so.
    """
    image = np.asarray(image)
    shape = tuple(image.shape)
    if image.dtype.kind not in "biuf":
        raise ValueError(f"image pixels must be numbers; got dtype {image.dtype} (shape {shape}). Convert to real-valued intensities first")
    looks_rgb = image.ndim in (3, 4) and shape[-1] in (3, 4)
    is_rgb = looks_rgb if rgb is None else rgb
    if is_rgb:
        if not looks_rgb:
            raise ValueError(f"rgb=True needs a last axis of 3 or 4 colour channels; got shape {shape}")
        from skimage.color import rgb2gray

        # Drop alpha instead of blending it: exported micrographs carry an opaque alpha.
        frames = rgb2gray(image[..., :3]).astype(np.float32)
        frames = frames[None] if frames.ndim == 2 else frames
        if notify is not None:
            notify(f"RGB image of shape {shape} converted to greyscale")
    elif image.ndim == 2:
        frames = image[None]
    elif image.ndim == 3:
        frames = image
    else:
        raise ValueError(
            f"expected a 2D frame (H, W) or a time-lapse (T, H, W); got shape {shape}. "
            "Pick one channel or z-plane first, e.g. image[:, 0] for (T, C, H, W) or image[..., 0] for channels last"
        )
    if frames.shape[-2] < MIN_SIDE or frames.shape[-1] < MIN_SIDE:
        hint = (
            " The last axis looks like channels: pick one first, e.g. image[..., 0]"
            if image.ndim == 3 and shape[-1] < MIN_SIDE
            else ""
        )
        raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE} pixels; got shape {shape} (read as (T, H, W) = {frames.shape}).{hint}")
    return frames.astype(np.float32, copy=False)


def normalize(frame: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Map the `low` and `high` percentiles to 0 and 1 (float32, not clipped)."""
    values = np.asarray(frame, dtype=np.float32)
    lo, hi = np.percentile(values, [low, high])
    if not hi > lo:
        # Nearly constant images: fall back to the full range, then to all zeros.
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        return np.zeros(values.shape, np.float32)
    return ((values - lo) / (hi - lo)).astype(np.float32)


def bright_objects(frame: np.ndarray) -> np.ndarray:
    """A normalised frame with a bright background (dark nuclei in brightfield) inverted to
    bright objects on dark, as a model trained mostly on fluorescence expects them."""
    return (1.0 - frame).astype(np.float32) if np.median(frame) > 0.5 else frame


def as_model_wants(frame: np.ndarray, settings: PipelineSettings) -> np.ndarray:
    """A normalised frame, inverted first if the model asks (`invert_bright_background`)."""
    return bright_objects(frame) if settings.invert_bright_background else frame


def model_input(frame: np.ndarray, settings: PipelineSettings) -> np.ndarray:
    """A raw frame as a model with these settings takes it: its percentiles to 0 and 1,
    then `as_model_wants`."""
    low, high = settings.normalize_percentiles
    return as_model_wants(normalize(frame, low, high), settings)


def working_shape(shape: tuple[int, int], working_size: int | None) -> tuple[int, int]:
    """Embryo models see whole frames at the scale they were trained at (longer side =
    `working_size`); models without it (nuclei) work at the image's own resolution."""
    if not working_size:
        return tuple(shape)
    factor = working_size / max(shape)
    return (max(16, round(shape[0] * factor)), max(16, round(shape[1] * factor)))
