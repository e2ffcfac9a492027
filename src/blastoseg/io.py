"""Image files in, amodal result files out.

Amodal results are stored as packed layered labels: a uint16 TIFF of shape (L, H, W)
for one frame or (T, L, H, W) for a time-lapse, where instance i of a frame carries
label i+1 and no two overlapping instances share a plane. Scores, depth and
provenance travel as JSON in the ImageJ "Info" field, so Fiji opens the file as a
(hyper)stack and `read_amodal` restores the `Instances` exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blastoseg import limits
from blastoseg.atomic import atomic_write  # also the writer of measure's CSVs
from blastoseg.instances import Instances

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg")
FORMAT_NAME = "blastoseg-amodal"
FORMAT_VERSION = 1
MEMMAP_BYTES = 1 << 26  # uncompressed TIFFs this large are memory-mapped, not read


# ---------------------------------------------------------------------- images
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a TIFF, PNG or JPEG file, as stored (no conversion).

    The declared size is checked against the pixel budget (`limits`) before any pixel is
    read; a large uncompressed TIFF is memory-mapped read-only rather than loaded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot read {path}: unknown file type {suffix or '(no suffix)'!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    _check_is_file(path, "image")
    if suffix in TIFF_SUFFIXES:
        return _read_tiff(path)
    import imageio.v3 as iio

    try:
        shape = iio.improps(path).shape
    except Exception as exc:  # a corrupt file raises anything from struct.error to OSError
        raise unreadable(path, exc) from exc
    limits.check_pixels(shape, path.name)
    try:
        return _nonempty(path, np.asarray(iio.imread(path)))
    except Exception as exc:
        raise unreadable(path, exc) from exc


def unreadable(path: Path, error: Exception) -> ValueError:
    """A corrupt or foreign file: the library's own words are often cryptic ('list index out of range')."""
    detail = " ".join(str(error).split()) or error.__class__.__name__
    return ValueError(f"cannot read {path}: it is damaged or not a {path.suffix.lstrip('.').upper()} file ({detail})")


def _check_is_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give {what} files, not a folder")
    if not path.is_file():
        raise FileNotFoundError(f"no such {what} file: {path}")


@contextlib.contextmanager
def tifffile_quiet() -> Iterator[None]:
    """tifffile logs what it finds wrong in a damaged file and then raises; the one-line
    error made of it says it once."""
    log = logging.getLogger("tifffile")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


@tifffile_quiet()
def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, mappable = series.shape, series.dataoffset is not None
            nbytes = series.size * series.dtype.itemsize
    except Exception as exc:  # a corrupt file raises anything from struct.error to OSError
        raise unreadable(path, exc) from exc
    limits.check_pixels(shape, path.name)
    try:
        if mappable and nbytes >= MEMMAP_BYTES:  # the pages stay on disk until used
            return tifffile.memmap(path, mode="r")
        pixels = np.asarray(tifffile.imread(path))
    except Exception as exc:
        raise unreadable(path, exc) from exc
    return _nonempty(path, pixels)


def _nonempty(path: Path, pixels: np.ndarray) -> np.ndarray:
    if pixels.size == 0:  # tifffile reads some damaged files as an empty array
        raise ValueError(f"cannot read {path}: it holds no pixels (a damaged file?)")
    return pixels


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an image atomically: TIFF keeps any dtype, PNG/JPEG need uint8 (or uint16 PNG)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _atomic_tiff(path, np.asarray(image))
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot write {path}: unknown file type {suffix!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    import imageio.v3 as iio

    return atomic_write(path, lambda tmp: iio.imwrite(tmp, np.asarray(image), extension=suffix))


def _atomic_tiff(path: Path, data: np.ndarray, **kwargs: Any) -> Path:
    import tifffile

    return atomic_write(path, lambda tmp: tifffile.imwrite(tmp, data, **kwargs))


def write_labels(path: str | os.PathLike, labels: np.ndarray) -> Path:
    """Write a 2D (or (T, H, W)) visible label image atomically as an integer TIFF."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
    if labels.ndim not in (2, 3):
        raise ValueError(f"a label image must be (H, W) or (T, H, W); got shape {labels.shape}")
    if labels.dtype.kind == "b" or (labels.size and labels.min() >= 0 and labels.max() <= np.iinfo(np.uint16).max):
        labels = labels.astype(np.uint16)
    return _atomic_tiff(Path(path), labels, compression="zlib")


# ---------------------------------------------------------------------- amodal files
def write_amodal(
    path: str | os.PathLike,
    instances: Instances | Sequence[Instances],
    provenance: Mapping[str, str] | None = None,
    embryos: Sequence[Mapping[str, Any] | None] | None = None,
) -> Path:
    """Write packed layered labels, (L, H, W) for one frame or (T, L, H, W) for a sequence.

    `provenance` (e.g. method, model_sha256) is stored with `blastoseg_version` added.
    """
    from blastoseg import __version__

    single = isinstance(instances, Instances)
    frames = [instances] if single else list(instances)
    if not frames:
        raise ValueError("write_amodal needs at least one frame of Instances")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"all frames must share one image shape; got {sorted(shapes)}")
    planes = [f.layered(np.uint16) for f in frames]
    n_planes = max(p.shape[0] for p in planes)
    height, width = frames[0].shape
    data = np.zeros((len(frames), n_planes, height, width), np.uint16)
    for t, p in enumerate(planes):
        data[t, : p.shape[0]] = p
    if single:
        data = data[0]
    if embryos is not None and len(embryos) != len(frames):
        raise ValueError(f"{len(embryos)} embryo entries for {len(frames)} frames; give one per frame (None where none was found)")
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "shape": list(data.shape),
        "provenance": {**{str(k): str(v) for k, v in (provenance or {}).items()}, "blastoseg_version": __version__},
        "frames": [{"scores": f.scores.tolist(), "depth": f.depth.tolist(), **({"embryo": dict(e)} if e else {})}
                   for f, e in zip(frames, embryos or [None] * len(frames), strict=True)],
    }
    axes = "ZYX" if single else "TZYX"
    # zlib (deflate) shrinks label planes ~100x and is read by ImageJ/Fiji and every TIFF library.
    return _atomic_tiff(Path(path), data, imagej=True, compression="zlib", metadata={"axes": axes, "Info": json.dumps(info)})


@tifffile_quiet()
def read_amodal(path: str | os.PathLike) -> tuple[list[Instances], dict[str, Any]]:
    """Frames of `Instances` and the provenance dict from an amodal (or plain label) TIFF.

    Files without blastoseg metadata are read as layered labels: a 2D label image,
    (L, H, W) planes, (T, H, W) labels when the file's axes say time, or (T, L, H, W).
    Their scores are 1 and a lower label is taken as nearer.
    """
    import tifffile

    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"cannot read {path} as labels: expected a .tif file")
    _check_is_file(path, "label")
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # a corrupt file raises anything from struct.error to OSError
        raise unreadable(path, exc) from exc
    with tif:
        try:
            series = tif.series[0]
            axes, info = series.axes, _blastoseg_info(tif)
        except Exception as exc:
            raise unreadable(path, exc) from exc
        limits.check_pixels(series.shape, path.name)  # before a single plane is decoded
        try:
            data = series.asarray()
        except Exception as exc:
            raise unreadable(path, exc) from exc
    if data.dtype.kind not in "biu":
        if data.dtype.kind != "f" or not np.array_equal(data, np.round(data)):
            raise ValueError(f"{path} does not hold integer labels (dtype {data.dtype}); expected a label or layered-label TIFF")
        data = data.astype(np.int64)
    if info is not None:
        _check_info(info, data.size, path)
        data = data.reshape(info["shape"])
        stack = data[None] if data.ndim == 3 else data
        metas = info["frames"]
        provenance = dict(info.get("provenance", {}))
    else:
        stack = _as_tlhw(data, axes, path)
        metas = [None] * stack.shape[0]
        provenance = {}
    return [_unpack(planes, meta) for planes, meta in zip(stack, metas, strict=True)], provenance


@tifffile_quiet()
def read_embryos(path: str | os.PathLike) -> list[dict[str, Any] | None]:
    """Per frame of an amodal TIFF, the embryo (zona) found in it, as
    `inference.localise.Embryo.as_dict` stored it; None where none was found or stored."""
    import tifffile

    path = Path(path)
    try:
        with tifffile.TiffFile(path) as tif:
            info = _blastoseg_info(tif)
            size = tif.series[0].size
    except Exception as exc:
        raise unreadable(path, exc) from exc
    if info is None:
        return []
    _check_info(info, size, path)
    return [frame.get("embryo") for frame in info["frames"]]


def _check_info(info: Mapping[str, Any], size: int, path: Path) -> None:
    """Refuse metadata that do not describe the file's planes, one entry per frame: a
    truncated or hand-edited file must not lose frames or shift scores silently."""

    def damaged(what: str) -> ValueError:
        return ValueError(f"{path}: its blastoseg metadata is damaged ({what}); segment the image again to rewrite it")

    shape = info.get("shape")
    if not (isinstance(shape, list) and len(shape) in (3, 4) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise damaged(f"'shape' is {shape!r}, not (L, H, W) or (T, L, H, W)")
    if int(np.prod(shape)) != size:
        raise damaged(f"'shape' {shape} does not match the {size} label pixels stored")
    frames = info.get("frames")
    n_frames = 1 if len(shape) == 3 else shape[0]
    if not isinstance(frames, list):
        raise damaged("no 'frames' list")
    if len(frames) != n_frames:
        raise damaged(f"{len(frames)} frame entries for {n_frames} frames")
    for t, frame in enumerate(frames):
        ok = isinstance(frame, dict) and all(isinstance(frame.get(k), list) for k in ("scores", "depth"))
        if not ok or len(frame["scores"]) != len(frame["depth"]):
            raise damaged(f"frame {t} lacks matching 'scores' and 'depth' lists")
        if not isinstance(frame.get("embryo", {}), (dict, type(None))):
            raise damaged(f"frame {t}'s 'embryo' is not a mapping")
    if not isinstance(info.get("provenance", {}), dict):
        raise damaged("'provenance' is not a mapping")


def _blastoseg_info(tif: Any) -> dict[str, Any] | None:
    meta = tif.imagej_metadata or {}
    text = meta.get("Info")
    if not isinstance(text, str):
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return None
    return info if isinstance(info, dict) and info.get("format") == FORMAT_NAME else None


def _as_tlhw(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    if data.ndim == 2:
        return data[None, None]
    if data.ndim == 3:
        # Without our metadata a 3D file is ambiguous; only an explicit time axis makes it frames.
        return data[:, None] if axes.upper().startswith("T") else data[None]
    if data.ndim == 4 and not axes.upper().endswith("S"):
        return data
    raise ValueError(f"{path} has shape {data.shape} (axes {axes}); expected labels (H, W), layered labels (L, H, W) or (T, L, H, W)")


def _unpack(planes: np.ndarray, meta: Mapping[str, Any] | None) -> Instances:
    values = np.unique(planes)
    values = values[values != 0]
    if meta is None:
        return Instances.from_layered(planes)
    scores = np.asarray(meta["scores"], np.float32)
    depth = np.asarray(meta["depth"], np.int32)
    if values.size and values.max() > scores.size:
        raise ValueError(f"label {values.max()} has no score/depth entry (only {scores.size} stored); the file is damaged")
    # Labels are i+1; index the metadata by label so a missing (empty) instance cannot shift the rest.
    idx = values.astype(np.int64) - 1
    return Instances.from_layered(planes, scores=scores[idx], depth=depth[idx])
