"""Every data set the benchmarks use, and the one place that knows where their files are.

Real data lives under one root: `$BLASTOSEG_DATA` if set, else `<repo>/../shared/data`,
holding `dsb2018/`, `isbi2014_cervical_train45/` and `cleavage_embryo/` (see that root's
README). Synthetic sets are generated in memory from fixed seeds, so every figure in
docs/benchmarks.md is computed on the same images.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from blastoseg.instances import Instances

if TYPE_CHECKING:
    from blastoseg.synth import Sample

ENV_VAR = "BLASTOSEG_DATA"
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FOLDERS = ("dsb2018", "isbi2014_cervical_train45", "cleavage_embryo")

Item = tuple[str, np.ndarray, Instances]  # (name, image, truth)
Pair = tuple[np.ndarray, Instances]


class DataMissing(FileNotFoundError):
    """A real data set's folder is not where the benchmarks look for it."""


def data_root() -> Path:
    return Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else DEFAULT_ROOT


def data_folder(name: str) -> Path:
    """The folder of data set `name` under the data root; DataMissing if absent."""
    folder = data_root() / name
    if not folder.is_dir():
        holding = ", ".join(f"{f}/" for f in FOLDERS)
        raise DataMissing(f"{folder} not found; set {ENV_VAR} to the folder holding {holding}")
    return folder


# ---------------------------------------------------------------- DSB2018 nuclei
DSB_HELD_OUT = 0.15  # of the train split, kept from training by every DSB benchmark


def dsb(split: str) -> list[Item]:
    """The greyscale (2D) images of one part ("train" or "test") of dsb2018/split.json, as
    float32, with their instances; the RGB brightfield / H&E images are left out."""
    import tifffile

    folder = data_folder("dsb2018")
    parts = json.loads((folder / "split.json").read_text())
    if split not in parts:
        raise ValueError(f"dsb2018/split.json has parts {sorted(parts)}; got {split!r}")
    out = []
    for sid in parts[split]:
        image = tifffile.imread(folder / "images" / f"{sid}.tif")
        if image.ndim != 2:
            continue
        out.append((sid, image.astype(np.float32), Instances.from_label_image(tifffile.imread(folder / "labels" / f"{sid}.tif"))))
    return out


def split_off(items: Sequence[Item], fraction: float = DSB_HELD_OUT, seed: int = 0) -> tuple[list[Pair], list[Item]]:
    """(training pairs, held-out items): a fixed random `fraction` of `items` held out."""
    order = np.random.default_rng(seed).permutation(len(items))
    n_held = max(1, round(fraction * len(items)))
    return [(items[i][1], items[i][2]) for i in order[n_held:]], [items[i] for i in order[:n_held]]


def dsb_train_split() -> tuple[list[Pair], list[Item]]:
    """The DSB train split as (pairs to train on, the 15% held out for validation and tuning)."""
    return split_off(dsb("train"))


# ---------------------------------------------------------------- ISBI 2014 cervical cells
# The 45 annotated images: 01-31 train, 32-35 validate, 36-45 test.
ISBI_PARTS = {"train": range(1, 32), "validation": range(32, 36), "test": range(36, 46)}


def isbi(part: str) -> list[Item]:
    """One part of the ISBI 2014 images (float32) with their amodal cytoplasms. The data has
    no depth order, so a cell's depth is its area rank, the smaller in front: a rule the
    network can learn from the image, unlike the arbitrary order of the planes."""
    import tifffile

    if part not in ISBI_PARTS:
        raise ValueError(f"ISBI parts are {sorted(ISBI_PARTS)}; got {part!r}")
    folder = data_folder("isbi2014_cervical_train45")
    out = []
    for i in ISBI_PARTS[part]:
        name = f"{i:02d}"
        image = tifffile.imread(folder / "images" / f"{name}.tif").astype(np.float32)
        stack = tifffile.imread(folder / "cyto_masks" / f"{name}.tif") > 0
        areas = stack.reshape(len(stack), -1).sum(1)
        depth = np.argsort(np.argsort(areas, kind="stable"), kind="stable")
        out.append((name, image, Instances.from_mask_stack(stack, depth=depth)))
    return out


# ---------------------------------------------------------------- real embryo frames
# Hours since insemination, burned into each frame's corner (cleavage_embryo/README.md).
EMBRYO_HOURS = {"RUN141": 32.0, "RUN142": 32.2, "RUN156": 35.0, "RUN157": 35.2, "RUN221": 48.3, "RUN222": 48.4}


@dataclass
class RealFrame:
    name: str  # the exported file name without its suffix (it has dots in the date)
    image: np.ndarray  # (H, W) uint8
    cells: Instances  # amodal outlines; their depth order is unknown
    fragments: np.ndarray  # (H, W) uint16 label image
    hours: float | None  # since insemination; None for a frame not in EMBRYO_HOURS


def real_embryos() -> list[RealFrame]:
    """The annotated EmbryoScope frames of cleavage_embryo/, by name. For evaluation only."""
    import tifffile

    from blastoseg.io import read_amodal, read_image

    folder = data_folder("cleavage_embryo")
    frames = []
    for mask in sorted((folder / "masks").glob("*.tif")):
        name = mask.stem
        image = read_image(next(p for p in (folder / "images").iterdir() if p.stem == name))
        if image.ndim == 3:  # greyscale saved as RGB
            image = image[..., :3].mean(-1).round().astype(np.uint8)
        run = re.search(r"RUN\d+", name)
        frames.append(RealFrame(
            name=name, image=np.asarray(image, np.uint8), cells=read_amodal(mask)[0][0],
            fragments=np.asarray(tifffile.imread(folder / "fragments" / mask.name), np.uint16),
            hours=EMBRYO_HOURS.get(run.group()) if run else None,
        ))
    return frames


# ---------------------------------------------------------------- synthetic sets
EMBRYO_TEST_SEED, EMBRYO_TEST_N = 2026, 200  # the synthetic embryo test set
EMBRYO_TUNE_SEED = 777  # validation embryos for threshold tuning, disjoint from the test set
SHAPES_PER_CLASS = 6  # seed paper 002's protocol: 3 classes of 6 instances, 256 x 256


ACQUIRED_TEST_SEED = 2027  # the synthetic acquisitions test set (well views, cut embryos, text, JPEG)


def synthetic_embryos(
    n: int = EMBRYO_TEST_N, seed: int | None = None, size: int = 256, acquired: bool = False
) -> list[Sample]:
    """The same images as `blastoseg synth OUT --kind embryo --n N --seed SEED --look clean`
    (or `--look acquired`), one stream; the seed defaults to the test set's of that look."""
    from blastoseg.synth import synth_embryo

    if seed is None:
        seed = ACQUIRED_TEST_SEED if acquired else EMBRYO_TEST_SEED
    rng = np.random.default_rng(seed)
    return [synth_embryo((size, size), seed=rng, acquisition=acquired) for _ in range(n)]


def shapes(n: int, seed: int) -> list[Sample]:
    """Seed 002 shapes images, image i from seed `seed + i` (so a prefix is a smaller set)."""
    from blastoseg.synth import synth_shapes

    return [synth_shapes(SHAPES_PER_CLASS, 256, seed=seed + i) for i in range(n)]
