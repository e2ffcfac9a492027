"""Image files in, amodal result files out.

Amodal results are stored as packed layered labels: a uint16 TIFF of shape (L, H, W)
for one frame or (T, L, H, W) for a time-lapse, where instance i of a frame carries
label i+1 and no two overlapping instances share a plane. Scores, depth and
provenance travel as JSON in the ImageJ "Info" field, so Fiji opens the file as a
(hyper)stack and `read_amodal` restores the `Instances` exactly.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blastoseg.instances import Instances

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".jpeg")
FORMAT_NAME = "blastoseg-amodal"
FORMAT_VERSION = 1


# ---------------------------------------------------------------------- images
def read_image(path: str | os.PathLike) -> np.ndarray:
    """Pixels of a TIFF, PNG or JPEG file, as stored (no conversion)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"cannot read {path}: unknown file type {suffix or '(no suffix)'!r}; use one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(f"no such image file: {path}")
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            pixels = np.asarray(tifffile.imread(path))
        else:
            import imageio.v3 as iio

            pixels = np.asarray(iio.imread(path))
    except Exception as exc:  # a corrupt file raises anything from struct.error to OSError
        raise ValueError(f"cannot read {path}: {exc}") from exc
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


# ---------------------------------------------------------------------- atomic writes
def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Run `write(tmp)` on a temp file beside `path`, then rename it over `path`.

    A crash or Ctrl-C mid-write never leaves a half-written result under the real name.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    # A fresh unique name rather than mkstemp: mkstemp's 0600 mode would survive the rename.
    tmp = path.parent / f".{path.stem}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


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
    info = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "shape": list(data.shape),
        "provenance": {**{str(k): str(v) for k, v in (provenance or {}).items()}, "blastoseg_version": __version__},
        "frames": [{"scores": f.scores.tolist(), "depth": f.depth.tolist(), **({"embryo": dict(e)} if e else {})}
                   for f, e in zip(frames, embryos or [None] * len(frames))],
    }
    axes = "ZYX" if single else "TZYX"
    # zlib (deflate) shrinks label planes ~100x and is read by ImageJ/Fiji and every TIFF library.
    return _atomic_tiff(Path(path), data, imagej=True, compression="zlib", metadata={"axes": axes, "Info": json.dumps(info)})


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
    if not path.is_file():
        raise FileNotFoundError(f"no such label file: {path}")
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes
            info = _blastoseg_info(tif)
    except Exception as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if data.dtype.kind not in "biu":
        if data.dtype.kind != "f" or not np.array_equal(data, np.round(data)):
            raise ValueError(f"{path} does not hold integer labels (dtype {data.dtype}); expected a label or layered-label TIFF")
        data = data.astype(np.int64)
    if info is not None:
        data = data.reshape(info["shape"])
        stack = data[None] if data.ndim == 3 else data
        metas = info["frames"]
        provenance = dict(info.get("provenance", {}))
    else:
        stack = _as_tlhw(data, axes, path)
        metas = [None] * stack.shape[0]
        provenance = {}
    return [_unpack(planes, meta) for planes, meta in zip(stack, metas)], provenance


def read_embryos(path: str | os.PathLike) -> list[dict[str, Any] | None]:
    """Per frame of an amodal TIFF, the embryo (zona) found in it, as
    `inference.localise.Embryo.as_dict` stored it; None where none was found or stored."""
    import tifffile

    with tifffile.TiffFile(Path(path)) as tif:
        info = _blastoseg_info(tif)
    return [frame.get("embryo") for frame in info["frames"]] if info else []


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
