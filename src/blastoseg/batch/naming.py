"""Output names: one rule for every door that derives a result's name from its input.

A result is named after the whole input file name minus its image suffix, so
`D2024.10.20_S01055_I4778_P_WELL06_RUN141.JPG` gives
`D2024.10.20_S01055_I4778_P_WELL06_RUN141_amodal.tif`. Cutting at the first dot instead
gave every frame of an EmbryoScope export the same name, and each overwrote the last.
"""

from __future__ import annotations

import os
from pathlib import Path

# Longest first, so ".ome.tif" wins over ".tif".
IMAGE_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif", ".png", ".jpeg", ".jpg")
AMODAL, VISIBLE, ZONA, FRAGMENTS = "_amodal.tif", "_visible.tif", "_zona.tif", "_fragments.tif"
FRAMES_CSV, EMBRYO_CSV = "_frames.csv", "_embryo.csv"
# The tags `blastoseg segment` gives its results; a file carrying one is never segmented again.
RESULT_TAGS = ("_amodal", "_visible", "_zona", "_fragments")


def image_suffix(path: str | os.PathLike) -> str | None:
    """The image suffix a file name ends with, as spelled in the name (any case), or None."""
    name = Path(path).name
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[-len(suffix):]
    return None


def is_image_name(path: str | os.PathLike) -> bool:
    """True for names blastoseg reads as images (hidden files excluded)."""
    return not Path(path).name.startswith(".") and image_suffix(path) is not None


def image_stem(path: str | os.PathLike) -> str:
    """The file name minus its image suffix: the stem every output of this input carries."""
    suffix = image_suffix(path)
    if suffix is None:
        raise ValueError(f"{Path(path).name} is not an image file name; expected one of {', '.join(IMAGE_SUFFIXES)} (any case)")
    return Path(path).name[: -len(suffix)]


def is_result_name(path: str | os.PathLike) -> bool:
    """True for the label files `blastoseg segment` writes (<stem>_amodal.tif, _visible, _zona, _fragments)."""
    suffix = image_suffix(path)
    return suffix is not None and suffix.lower() in (".tif", ".tiff") and image_stem(path).endswith(RESULT_TAGS)


def result_paths(out_dir: Path, stem: str, timelapse: bool = False) -> dict[str, Path]:
    """The files that make a result complete, the amodal file last: it is written last, so
    its presence says the others were written before it."""
    names = {"visible": VISIBLE}
    if timelapse:
        names.update(frames_csv=FRAMES_CSV, embryo_csv=EMBRYO_CSV)
    names["amodal"] = AMODAL
    return {key: out_dir / f"{stem}{tail}" for key, tail in names.items()}


def zona_path(out_dir: Path, stem: str) -> Path:
    """The zona labels a model that localises embryos adds to a result."""
    return out_dir / f"{stem}{ZONA}"
