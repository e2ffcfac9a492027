"""Dataset folders: `images/<name>.<tif|png|jpg>` beside `masks/<name>.tif`.

A mask is a 2D label image (modal) or packed layered labels (L, H, W) (amodal), as
written by `blastoseg.io.write_amodal`. synth, train and evaluate all speak this layout.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blastoseg import io
from blastoseg.atomic import is_temporary
from blastoseg.inference import preprocess
from blastoseg.instances import Instances

MASK_SUFFIX = ".tif"
AMODAL_TAG = "_amodal"


@dataclass(frozen=True)
class Item:
    """One annotated image: a float32 (H, W) frame and its instances."""

    name: str
    image: np.ndarray
    instances: Instances


def _skipped(path: Path) -> bool:
    """Hidden files (an interrupted write's temporary among them) and folders are not items."""
    return path.name.startswith(".") or is_temporary(path) or not path.is_file()


def _image_files(folder: Path) -> dict[str, Path]:
    images = folder / "images"
    found: dict[str, Path] = {}
    for path in sorted(images.iterdir()):
        if path.suffix.lower() not in io.IMAGE_SUFFIXES or _skipped(path):
            continue
        if path.stem in found:
            raise ValueError(f"two images are named {path.stem!r} in {images} ({found[path.stem].name}, {path.name}); keep one")
        found[path.stem] = path
    return found


def _check_layout(folder: Path) -> None:
    if not folder.is_dir():
        raise FileNotFoundError(f"no such dataset folder: {folder}")
    missing = [sub for sub in ("images", "masks") if not (folder / sub).is_dir()]
    if missing:
        raise ValueError(
            f"{folder} is not a dataset folder: it lacks {' and '.join(s + '/' for s in missing)}. "
            "A dataset holds images/<name>.tif and masks/<name>.tif"
        )


def list_dataset(folder: str | os.PathLike) -> list[str]:
    """Sorted names that have both an image and a mask."""
    folder = Path(folder)
    _check_layout(folder)
    names = [name for name in _image_files(folder) if (folder / "masks" / f"{name}{MASK_SUFFIX}").is_file()]
    if not names:
        raise ValueError(f"{folder} holds no image with a matching mask (images/<name>.tif + masks/<name>.tif)")
    return names


def read_item(folder: str | os.PathLike, name: str) -> Item:
    """The image (float32, not normalised) and instances of one dataset entry."""
    folder = Path(folder)
    _check_layout(folder)
    images = _image_files(folder)
    if name not in images:
        raise FileNotFoundError(f"no image named {name!r} in {folder / 'images'}")
    pixels = io.read_image(images[name])
    try:
        frames = preprocess.as_frames(pixels)
    except ValueError as error:  # say which of the dataset's images it is
        raise ValueError(f"{images[name]}: {error}") from None
    if frames.shape[0] != 1:
        raise ValueError(f"{images[name]} holds {frames.shape[0]} frames; a dataset image must be one 2D frame")
    mask_path = folder / "masks" / f"{name}{MASK_SUFFIX}"
    instances = _single_frame(mask_path)
    if instances.shape != frames.shape[1:]:
        raise ValueError(f"{mask_path} is {instances.shape} but its image is {frames.shape[1:]}; they must match")
    return Item(name, frames[0], instances)


def iter_dataset(folder: str | os.PathLike) -> Iterator[Item]:
    """Every item of the dataset, in name order, read lazily."""
    for name in list_dataset(folder):
        yield read_item(folder, name)


def write_item(
    folder: str | os.PathLike,
    name: str,
    image: np.ndarray,
    instances: Instances,
    *,
    visible: bool = False,
) -> None:
    """Add one entry; the mask is packed layered labels, or the visible label image if `visible`."""
    folder = Path(folder)
    image = np.asarray(image)
    if image.ndim != 2 or image.shape != instances.shape:
        raise ValueError(f"image shape {image.shape} must be 2D and equal the instances' shape {instances.shape}")
    if image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    io.write_image(folder / "images" / f"{name}.tif", image)
    mask_path = folder / "masks" / f"{name}{MASK_SUFFIX}"
    if visible:
        io.write_labels(mask_path, instances.visible_labels())
    else:
        io.write_amodal(mask_path, instances, {"method": "ground truth"})


def read_instances_dir(
    folder: str | os.PathLike,
    progress: Callable[[Iterable[tuple[str, Path]]], Iterable[tuple[str, Path]]] | None = None,
) -> dict[str, Instances]:
    """Instances by name from a dataset folder (its masks/) or a plain folder of label TIFFs.

    `<name>_amodal.tif` counts as `<name>` and wins over a plain `<name>.tif`;
    `progress` may wrap the (name, path) iteration, e.g. in a tqdm bar.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such folder: {folder}")
    if (folder / "masks").is_dir():
        folder = folder / "masks"
    paths: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in io.TIFF_SUFFIXES or _skipped(path):
            continue
        stem = path.stem
        if stem.endswith(AMODAL_TAG):
            paths[stem[: -len(AMODAL_TAG)]] = path
        else:
            paths.setdefault(stem, path)
    if not paths:
        raise ValueError(f"{folder} holds no .tif label files")
    items: Iterable[tuple[str, Path]] = sorted(paths.items())
    if progress is not None:
        items = progress(items)
    return {name: _single_frame(path) for name, path in items}


def _single_frame(path: Path) -> Instances:
    frames, _ = io.read_amodal(path)
    if len(frames) != 1:
        raise ValueError(f"{path} holds {len(frames)} frames; a dataset mask must describe one 2D image")
    return frames[0]
