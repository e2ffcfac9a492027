"""Preparing a frame for a model: validation, normalisation, inversion, working size.

Every door (Python, command line, napari, training) passes frames through these, so a
model sees its input the same way in training and at inference.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from blastoseg.notices import tell
from blastoseg.settings import PipelineSettings

MIN_SIDE = 16


def as_array(image: object) -> np.ndarray:
    """`image` as a numpy array: numpy, nested lists, a torch tensor (any device, with or
    without grad) or a dask / xarray array (computed). A file path is refused, pointing to
    the function that reads files."""
    if isinstance(image, (str, bytes, os.PathLike)):
        raise TypeError(
            f"got a file name ({image!r}), not pixels: pass a numpy array, e.g. "
            "blastoseg.io.read_image(path), or use blastoseg.segment_file(path, model, out_dir) for files"
        )
    if type(image).__module__.split(".")[0] == "torch":  # without importing torch
        image = image.detach().cpu().numpy()
    try:
        return np.asarray(image)
    except Exception as exc:  # ragged lists, a tensor type numpy cannot convert
        raise TypeError(f"cannot read {type(image).__name__} as an image: {exc}; pass a numpy array") from None


def as_frames(image: np.ndarray, *, rgb: bool | None = None, notify: Callable[[str], None] | None = None) -> np.ndarray:
    """Validate `image` and return frames (T, H, W), float32 (float64 if float32 would overflow).

    Accepts (H, W), (H, W, 3|4) RGB(A), (T, H, W) and (T, H, W, 3|4). `rgb=None`
    detects colour from a last axis of 3 or 4; colour is converted to grey and
    `notify` is told so (Python's `warnings` when no `notify` is given), as it is when
    a (3|4, H, W) array, which may be channels first, is read as frames. A frame without
    one finite pixel is refused.
    """
    image = as_array(image)
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
        frames = rgb2gray(_within_float32(image[..., :3])).astype(np.float32)
        frames = frames[None] if frames.ndim == 2 else frames
        tell(f"RGB image of shape {shape} converted to greyscale", notify)
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
    if image.ndim == 3 and not is_rgb and shape[0] in (3, 4):
        tell(f"an array of shape {shape} is read as {shape[0]} frames of a time-lapse; if it is one colour image "
              "with channels first, pass image.transpose(1, 2, 0) or pick one channel", notify)
    if frames.dtype.kind == "f":
        _refuse_empty_frames(frames)
    return _within_float32(frames)


def _within_float32(frames: np.ndarray) -> np.ndarray:
    """float32 frames, or float64 ones when float32 cannot hold their finite values (1e300
    would become inf; `normalize` brings them to a usable range)."""
    if frames.dtype.kind == "f" and frames.dtype.itemsize > 4:
        with np.errstate(over="ignore"):
            narrow = frames.astype(np.float32)
        if np.count_nonzero(np.isinf(narrow)) > np.count_nonzero(np.isinf(frames)):
            return frames.astype(np.float64, copy=False)
        return narrow
    return frames.astype(np.float32, copy=False)


def _refuse_empty_frames(frames: np.ndarray) -> None:
    empty = [t for t, frame in enumerate(frames) if not np.isfinite(frame).any()]
    if empty:
        if len(frames) == 1:
            where = "the image holds"
        else:
            listed = ", ".join(map(str, empty[:5])) + (" ..." if len(empty) > 5 else "")
            where = f"frame{'s' if len(empty) > 1 else ''} {listed} of {len(frames)} hold{'' if len(empty) > 1 else 's'}"
        raise ValueError(f"{where} no finite pixel (all NaN or infinite): nothing to segment. "
                         "Check how the image was exported, or drop those frames")


# Normalised values are kept within +-LIMIT: a pixel of 1e300 among intensities of 0-255
# would otherwise become inf in float32 and every map a network makes from it NaN.
LIMIT = 1e6


def normalize(frame: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Map the `low` and `high` percentiles to 0 and 1 (float32, not clipped but kept
    within +-LIMIT).

    NaN and infinite pixels are left out of the percentiles, with a `notices.Notice` giving
    their count; NaN and -inf come out as 0, +inf as 1. A frame without one finite pixel
    is a ValueError.
    """
    values = _within_float32(np.asarray(frame))
    if values.dtype.kind != "f":
        values = values.astype(np.float32)
    finite = np.isfinite(values)
    n_bad = values.size - int(np.count_nonzero(finite))
    if n_bad == values.size:
        raise ValueError("the frame holds no finite pixel (all NaN or infinite); it cannot be normalised or segmented")
    sample = values[finite] if n_bad else values
    if n_bad:
        tell(f"{n_bad} of {values.size} pixels are NaN or infinite; they are left out of the normalisation "
              "and read as background (NaN, -inf) or as bright (+inf)", None)
    with np.errstate(over="ignore", invalid="ignore"):
        lo, hi = np.percentile(sample, [low, high])
        if not (np.isfinite(lo) and np.isfinite(hi)):  # interpolating between +-1e308 overflows
            lo, hi = np.percentile(sample, [low, high], method="nearest")
        if not hi > lo:
            # Nearly constant images: fall back to the full range, then to all zeros.
            lo, hi = float(sample.min()), float(sample.max())
        span = np.float64(hi) - np.float64(lo)
        if not hi > lo:
            out = np.zeros(values.shape, np.float32)
        elif np.isfinite(span):
            out = np.subtract(values, lo, dtype=np.float64)
            out /= span
        else:  # the range itself overflows: halve everything, which changes no ratio
            out = np.subtract(values / 2, lo / 2, dtype=np.float64)
            out /= hi / 2 - lo / 2
    np.clip(out, -LIMIT, LIMIT, out=out)
    if n_bad:
        out[~finite] = np.where(values[~finite] > 0, 1.0, 0.0)
    return out.astype(np.float32, copy=False)


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
