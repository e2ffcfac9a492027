"""Blastomere measurements: per cell, per embryo frame, and cleavage times.

Shape measures come from `skimage.measure.regionprops` on each cell's AMODAL mask, so a
cell half hidden behind a neighbour keeps its whole size. One embryo per image is
assumed. Lengths are in pixels and in micrometres (`pixel_size`, µm per pixel as
(y, x)); with anisotropic pixels the perimeter (and circularity) in µm is left empty
because it is not defined by a single factor.

Definitions (docs/tutorial.md repeats them):
- diameter_difference = (max - min) / max of the cells' equivalent diameters;
  size_ratio = min / max of the same diameters.
- symmetric (Istanbul consensus, ESHRE/ALPHA 2011: blastomere size differences of at
  most 25% at the 2-, 4- and 8-cell stages): diameter_difference <= 0.25; only
  evaluated for 2, 4 or 8 cells, else empty.
- cleavage time tN: the first frame from which the cell count stays >= N for
  `stable` consecutive frames (default 2); empty if never reached.
- fragmentation_pct = fragment area / (cell + fragment area), a pixel under a cell
  counting as the cell's; fragmentation_grade (Istanbul consensus): "<10%", "10-25%" or
  ">25%". Left empty when the model does not find fragments.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from skimage.measure import regionprops

from blastoseg.instances import Instances

SYMMETRY_STAGES = (2, 4, 8)
SYMMETRY_MAX_DIFFERENCE = 0.25
CLEAVAGE_EVENTS = (2, 3, 4, 5, 8)
PROVENANCE_COLUMNS = ("image", "method", "model_sha256", "blastoseg_version")

PixelSize = float | tuple[float, float]


@dataclass
class Measurements:
    """Per-cell and per-frame tables of one embryo (one image or time-lapse)."""

    cells: pd.DataFrame
    frames: pd.DataFrame
    cleavage: dict[str, int | None] = field(default_factory=dict)  # event -> frame index
    frame_interval_h: float | None = None

    def cleavage_hours(self) -> dict[str, float | None]:
        """Cleavage times in hours (None without a frame interval or when not reached)."""
        if not self.frame_interval_h:
            return {k: None for k in self.cleavage}
        return {k: (None if v is None else v * self.frame_interval_h) for k, v in self.cleavage.items()}


def _spacing(pixel_size: PixelSize) -> tuple[float, float]:
    sy, sx = (pixel_size, pixel_size) if np.isscalar(pixel_size) else tuple(pixel_size)  # type: ignore[misc]
    if not (0 < sy < math.inf and 0 < sx < math.inf):
        raise ValueError(f"the pixel size must be a positive number of micrometres; got {pixel_size}")
    return float(sy), float(sx)


def _props(mask: np.ndarray, origin: tuple[int, int], spacing: tuple[float, float] | None) -> Any:
    # One pixel of padding so the perimeter of a cell touching its crop edge is traced
    # exactly as it would be in the full image.
    padded = np.pad(mask, 1).astype(np.uint8)
    return regionprops(padded, spacing=spacing, offset=(origin[0] - 1, origin[1] - 1))[0]


def measure_instances(
    instances: Instances, pixel_size: PixelSize = 1.0, frame: int = 0, cell_ids: Sequence[int] | None = None
) -> pd.DataFrame:
    """One row per cell with area, shape, occlusion and confidence; cell i is numbered
    `cell_ids[i]` (default i+1, its label in `visible_labels()`)."""
    sy, sx = _spacing(pixel_size)
    isotropic = np.isclose(sy, sx)
    visible = [int(v.sum()) for v in instances.visible_masks()]
    ids = list(range(1, len(instances) + 1)) if cell_ids is None else [int(k) for k in cell_ids]
    if len(ids) != len(instances):
        raise ValueError(f"{len(ids)} cell ids for {len(instances)} cells")
    rows = []
    for i, (box, mask) in enumerate(zip(instances.boxes, instances.masks)):
        origin = (int(box[0]), int(box[1]))
        px = _props(mask, origin, None)
        um = _props(mask, origin, (sy, sx))
        area = int(px.area)
        perimeter_um = float(px.perimeter) * sy if isotropic else float("nan")
        area_um2 = area * sy * sx
        rows.append(
            {
                "frame": frame,
                "cell": ids[i],
                "area_px": area,
                "area_um2": area_um2,
                "visible_area_px": visible[i],
                "visible_area_um2": visible[i] * sy * sx,
                "occluded_fraction": (area - visible[i]) / area,
                "perimeter_px": float(px.perimeter),
                "perimeter_um": perimeter_um,
                "equivalent_diameter_px": float(px.equivalent_diameter_area),
                "equivalent_diameter_um": float(um.equivalent_diameter_area),
                "major_axis_px": float(px.axis_major_length),
                "major_axis_um": float(um.axis_major_length),
                "minor_axis_px": float(px.axis_minor_length),
                "minor_axis_um": float(um.axis_minor_length),
                "eccentricity": float(px.eccentricity),
                "circularity": 4 * np.pi * area_um2 / perimeter_um**2 if perimeter_um > 0 else float("nan"),
                "centroid_y_px": float(px.centroid[0]),
                "centroid_x_px": float(px.centroid[1]),
                "centroid_y_um": float(px.centroid[0]) * sy,
                "centroid_x_um": float(px.centroid[1]) * sx,
                "confidence": float(instances.scores[i]),
                "depth": int(instances.depth[i]),
            }
        )
    columns = list(rows[0]) if rows else list(measure_instances(_ONE_PIXEL).columns)
    return pd.DataFrame(rows, columns=columns)


def symmetry(diameters: Sequence[float] | np.ndarray) -> bool | None:
    """Istanbul-consensus evenness: True if (max - min) / max <= 0.25 at 2, 4 or 8 cells, else None."""
    d = np.asarray(diameters, dtype=np.float64)
    if len(d) not in SYMMETRY_STAGES or d.max() <= 0:
        return None
    return bool((d.max() - d.min()) / d.max() <= SYMMETRY_MAX_DIFFERENCE)


def cleavage_times(counts: Sequence[int] | np.ndarray, stable: int = 2, events: Sequence[int] = CLEAVAGE_EVENTS) -> dict[str, int | None]:
    """Per event N, the first frame from which the count stays >= N for `stable` frames."""
    if stable < 1:
        raise ValueError(f"stable must be at least 1 frame; got {stable}")
    counts = np.asarray(counts)
    out: dict[str, int | None] = {}
    for n in events:
        reached = counts >= n
        hits = [t for t in range(len(counts) - stable + 1) if reached[t : t + stable].all()]
        out[f"t{n}"] = hits[0] if hits else None
    return out


def _frame_row(instances: Instances, cells: pd.DataFrame, frame: int) -> dict[str, Any]:
    n = len(cells)
    area = cells["area_px"].to_numpy(np.float64)
    diam = cells["equivalent_diameter_px"].to_numpy(np.float64)
    occluded = int(cells["area_px"].sum() - cells["visible_area_px"].sum())
    um2_per_px = float(cells["area_um2"].sum() / area.sum()) if n else float("nan")
    return {
        "frame": frame,
        "n_cells": n,
        "mean_area_px": area.mean() if n else float("nan"),
        "mean_area_um2": cells["area_um2"].mean() if n else float("nan"),
        "cv_area": area.std() / area.mean() if n else float("nan"),  # population std (ddof=0)
        "size_ratio": diam.min() / diam.max() if n else float("nan"),
        "diameter_difference": (diam.max() - diam.min()) / diam.max() if n else float("nan"),
        "symmetric": symmetry(diam) if n else None,
        "total_area_px": int(area.sum()),
        "total_visible_area_px": int(cells["visible_area_px"].sum()),
        "total_occluded_area_px": occluded,
        "total_occluded_area_um2": occluded * um2_per_px if n else 0.0,
        "overlap_area_px": int((instances.coverage() >= 2).sum()),
    }


def fragmentation_grade(percent: float) -> str:
    """The Istanbul consensus grade of a fragmentation percentage: < 10 %, 10-25 %, > 25 %."""
    return "<10%" if percent < 10 else "10-25%" if percent <= 25 else ">25%"


def fragmentation(cells: Instances, fragments: np.ndarray) -> tuple[int, float]:
    """(fragment area px, fragment area / (cell + fragment area) in percent); `fragments` is a
    boolean or label image, and a pixel under a cell counts as the cell's."""
    cell = cells.coverage() > 0
    fragment = (np.asarray(fragments) > 0) & ~cell
    area, total = int(fragment.sum()), int(cell.sum() + fragment.sum())
    return area, 100.0 * area / total if total else 0.0


def fragment_columns(cells: Instances, fragments: Instances | None, pixel_size: PixelSize = 1.0) -> dict[str, Any]:
    """A frame's fragments: count, area (px, µm²), fragmentation % and grade; empty without them."""
    if fragments is None:
        return {"n_fragments": None, "fragment_area_px": None, "fragment_area_um2": None,
                "fragmentation_pct": None, "fragmentation_grade": None}
    area, percent = fragmentation(cells, fragments.coverage() > 0)
    dy, dx = _spacing(pixel_size)
    return {"n_fragments": len(fragments), "fragment_area_px": area, "fragment_area_um2": round(area * dy * dx, 2),
            "fragmentation_pct": round(percent, 2), "fragmentation_grade": fragmentation_grade(percent)}


ZONA_COLUMNS = ("zona_outer_diameter", "zona_inner_diameter", "zona_thickness")


def zona_columns(embryo: Mapping[str, Any] | None, pixel_size: PixelSize = 1.0) -> dict[str, float]:
    """A frame's zona measures in px and µm (mean of the two axes' pixel size); NaN without a zona."""
    um = float(np.mean(_spacing(pixel_size)))
    if not embryo:
        return {f"{name}_{unit}": np.nan for name in ZONA_COLUMNS for unit in ("px", "um")}
    px = {"zona_outer_diameter": 2 * embryo["outer_radius"], "zona_inner_diameter": 2 * embryo["inner_radius"],
          "zona_thickness": embryo["outer_radius"] - embryo["inner_radius"]}
    return {**{f"{k}_px": round(float(v), 2) for k, v in px.items()}, **{f"{k}_um": round(float(v) * um, 2) for k, v in px.items()}}


def measure_frames(
    frames: Sequence[Instances] | Instances,
    pixel_size: PixelSize = 1.0,
    frame_interval_h: float | None = None,
    provenance: Mapping[str, str] | None = None,
    stable: int = 2,
    cell_ids: Sequence[Sequence[int]] | None = None,
    embryos: Sequence[Mapping[str, Any] | None] | None = None,
    fragments: Sequence[Instances | None] | None = None,
) -> Measurements:
    """Measure one frame or a time-lapse; `provenance` (image, method, model_sha256) goes into every row.

    `cell_ids[t]` numbers the cells of frame t (default 1..n); the frame interval is in hours.
    `embryos[t]`, the zona found in frame t (`Embryo.as_dict`), adds its outer and inner
    diameters and thickness to the frame's row, in px and µm; `fragments[t]`, the
    fragments found in frame t, its fragment area and fragmentation (percent and grade).
    """
    from blastoseg import __version__

    frames = [frames] if isinstance(frames, Instances) else list(frames)
    if not frames:
        raise ValueError("nothing to measure: no frames given")
    _spacing(pixel_size)  # refused before any work, even when no frame holds a cell
    if frame_interval_h is not None and not 0 < frame_interval_h < math.inf:
        raise ValueError(f"the frame interval must be a positive number of hours between frames; got {frame_interval_h}")
    for name, given in (("cell_ids", cell_ids), ("embryos", embryos or None)):
        if given is not None and len(given) != len(frames):
            raise ValueError(f"{len(given)} {name} entries for {len(frames)} frames; give one per frame")
    cell_tables, frame_rows = [], []
    for t, instances in enumerate(frames):
        cells = measure_instances(instances, pixel_size, frame=t, cell_ids=None if cell_ids is None else cell_ids[t])
        cell_tables.append(cells)
        frame_rows.append({
            **_frame_row(instances, cells, t),
            **fragment_columns(instances, fragments[t] if fragments else None, pixel_size),
            **zona_columns(embryos[t] if embryos else None, pixel_size),
        })
    cells = pd.concat(cell_tables, ignore_index=True) if cell_tables else measure_instances(_ONE_PIXEL)[:0]
    per_frame = pd.DataFrame(frame_rows)
    per_frame["symmetric"] = per_frame["symmetric"].astype(object)  # True / False / None, never numpy bools
    cleavage = cleavage_times(per_frame["n_cells"].to_numpy() if len(per_frame) else [], stable=stable)
    if len(frames) > 1 or frame_interval_h:
        per_frame.insert(1, "time_h", per_frame["frame"] * frame_interval_h if frame_interval_h else np.nan)
        events = {t: [] for t in range(len(frames))}
        for name, t in cleavage.items():
            if t is not None:
                events[t].append(name)
        per_frame["cleavage"] = [";".join(events[t]) for t in range(len(frames))]
    prov = {"image": "", "method": "", "model_sha256": "", **{k: str(v) for k, v in (provenance or {}).items()}}
    prov["blastoseg_version"] = __version__
    for table in (cells, per_frame):
        for name in PROVENANCE_COLUMNS:
            table[name] = prov[name]
    return Measurements(cells, per_frame, cleavage, frame_interval_h)


def csv_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The two files written for `path`: <stem>_cells.csv and <stem>_frames.csv."""
    path = Path(path)
    stem = path.name[: -len(".csv")] if path.name.lower().endswith(".csv") else path.name
    for suffix in ("_cells", "_frames"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    return path.with_name(f"{stem}_cells.csv"), path.with_name(f"{stem}_frames.csv")


def _free_paths(path: Path) -> tuple[Path, Path]:
    cells, frames = csv_paths(path)
    stem = cells.name[: -len("_cells.csv")]
    k = 2
    while cells.exists() or frames.exists():
        cells, frames = csv_paths(path.with_name(f"{stem}-{k}"))
        k += 1
    return cells, frames


def write_csv(
    measurements: Measurements,
    path: str | os.PathLike,
    on_exists: Literal["rename", "error", "overwrite"] = "rename",
) -> tuple[Path, Path]:
    """Write <stem>_cells.csv and <stem>_frames.csv; returns the two paths actually written.

    An existing file is never replaced silently: "rename" picks <stem>-2, -3, ...;
    "error" raises FileExistsError; "overwrite" replaces both. Text that a spreadsheet
    would run as a formula is escaped (`tables`).
    """
    from blastoseg.tables import write_table

    path = Path(path)
    cells_path, frames_path = csv_paths(path)
    if on_exists not in ("rename", "error", "overwrite"):
        raise ValueError(f"on_exists must be 'rename', 'error' or 'overwrite'; got {on_exists!r}")
    if cells_path.exists() or frames_path.exists():
        if on_exists == "error":
            taken = [str(p) for p in (cells_path, frames_path) if p.exists()]
            raise FileExistsError(f"{' and '.join(taken)} already exist; choose another name or allow overwriting")
        if on_exists == "rename":
            cells_path, frames_path = _free_paths(path)
    write_table(measurements.cells, cells_path)
    write_table(measurements.frames, frames_path)
    return cells_path, frames_path


# A 1-pixel instance set gives the column list of an empty table without duplicating it.
_ONE_PIXEL = Instances.from_masks((1, 1), [((0, 0, 1, 1), np.ones((1, 1), bool))])
