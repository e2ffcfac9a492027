"""Tables of embryos: per time-lapse cleavage times and symmetry, and one set of CSVs for
a whole results folder (`blastoseg measure RESULTS_DIR`).

Cleavage times are `measure.cleavage_times` (the first frame from which the count stays
at N or more for two frames) read in the frames' hours. cc2 = t3 - t2 (the second cell
cycle), s2 = t4 - t3 and s3 = t8 - t5 (the synchrony of the second and third cleavage
rounds), as in Ciray et al. 2014's annotation guidelines. Symmetry at the 2-, 4- and
8-cell stages is the median over those frames of measure's diameter_difference,
symmetric when at most 0.25 (Istanbul consensus).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from blastoseg.batch.naming import AMODAL
from blastoseg.batch.timelapse import natural_key

if TYPE_CHECKING:
    import pandas as pd

    from blastoseg.instances import Instances

EVENTS = (2, 3, 4, 5, 6, 7, 8)
STAGES = (2, 4, 8)
TABLES = ("cells", "frames", "embryos")


def provenance_columns(record: Mapping[str, str], result: str) -> dict[str, str]:
    """Where a row came from: the input, the result file, the model, the version that segmented it."""
    return {"source": record.get("source", ""), "result": result, "model": record.get("model", ""),
            "segmented_with": record.get("blastoseg_version", "")}


def measure_result(
    frames: Sequence[Instances],
    record: Mapping[str, str],
    result: str,
    embryos: Sequence[Mapping[str, Any] | None] | None = None,
    times_h: Sequence[float] | None = None,
    pixel_size: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any] | None]:
    """Cells, frames and (for more than one frame) the embryo row of one result."""
    from blastoseg.measure import measure_frames

    name = result[: -len(AMODAL)] if result.endswith(AMODAL) else result
    prov = {"image": name, "method": record.get("method", ""), "model_sha256": record.get("model_sha256", "")}
    m = measure_frames(list(frames), pixel_size=pixel_size, provenance=prov, embryos=embryos or None)
    extra = provenance_columns(record, result)
    files = json.loads(record["frames"]) if record.get("frames") else None
    per_frame = m.frames
    if len(frames) > 1:
        per_frame["time_h"] = list(times_h) if times_h is not None else math.nan
        if files is not None and len(files) == len(per_frame):
            per_frame.insert(1, "file", files)
    for table in (m.cells, per_frame):
        for key, value in extra.items():
            table[key] = value
    embryo = None
    if len(frames) > 1:
        embryo = {"image": name, "n_frames": len(frames), **embryo_row(per_frame, times_h),
                  "method": prov["method"], "model_sha256": prov["model_sha256"],
                  "blastoseg_version": per_frame["blastoseg_version"].iloc[0], **extra}
    return m.cells, per_frame, embryo


def embryo_row(per_frame: pd.DataFrame, times_h: Sequence[float] | None) -> dict[str, Any]:
    """t2..t8, cc2, s2, s3 (in hours when the frames' times are known, else in frames) and
    the symmetry at 2, 4 and 8 cells, from a time-lapse's per-frame table."""
    from blastoseg.measure import SYMMETRY_MAX_DIFFERENCE, cleavage_times

    counts = per_frame["n_cells"].to_numpy()
    events = cleavage_times(counts, events=EVENTS)
    at = (lambda t: float(times_h[t])) if times_h is not None else float
    times = {k: (math.nan if t is None else round(at(t), 3)) for k, t in events.items()}
    row: dict[str, Any] = {"time_unit": "h" if times_h is not None else "frame", **times}
    row.update(cc2=times["t3"] - times["t2"], s2=times["t4"] - times["t3"], s3=times["t8"] - times["t5"])
    row.update({f"{k}_frame": (math.nan if t is None else t) for k, t in events.items()})
    row["max_cells"] = int(counts.max()) if len(counts) else 0
    for n in STAGES:
        stage = per_frame.loc[per_frame["n_cells"] == n, "diameter_difference"]
        median = float(stage.median()) if len(stage) else math.nan
        row[f"frames_{n}cell"] = len(stage)
        row[f"diameter_difference_{n}cell"] = round(median, 4)
        row[f"symmetric_{n}cell"] = None if math.isnan(median) else bool(median <= SYMMETRY_MAX_DIFFERENCE)
    return {k: (round(v, 3) if isinstance(v, float) and k in ("cc2", "s2", "s3") else v) for k, v in row.items()}


def measure_folder(folder: Path, pixel_size: float = 1.0, interval_h: float | None = None) -> dict[str, pd.DataFrame]:
    """Cells, frames and embryos tables of every `*_amodal.tif` in `folder`, in natural order.

    A time-lapse's frame times are those stored with its result (from its frames' names
    or metadata, or the interval it was segmented with); `interval_h` serves the others."""
    import pandas as pd

    from blastoseg import io

    results = sorted((p for p in folder.iterdir() if p.is_file() and p.name.endswith(AMODAL) and not p.name.startswith(".")),
                     key=lambda p: natural_key(p.name))
    if not results:
        raise ValueError(f"{folder} holds no *{AMODAL} results; run `blastoseg segment ... -o {folder}` first")
    cells, frames, embryos = [], [], []
    for path in results:
        found, record = io.read_amodal(path)
        stored = json.loads(record["frame_times_h"]) if record.get("frame_times_h") else None
        times = stored if stored is not None else ([i * interval_h for i in range(len(found))] if interval_h else None)
        c, f, e = measure_result(found, record, path.name, io.read_embryos(path), times, pixel_size)
        cells.append(c)
        frames.append(f)
        if e is not None:
            embryos.append(e)
    return {"cells": pd.concat(cells, ignore_index=True), "frames": pd.concat(frames, ignore_index=True),
            "embryos": pd.DataFrame(embryos, columns=embryo_columns())}


def embryo_columns() -> list[str]:
    """The embryos table's columns, so a folder without time-lapses still gets its header."""
    import pandas as pd

    template = pd.DataFrame({"n_cells": [0], "diameter_difference": [math.nan]})
    return ["image", "n_frames", *embryo_row(template, None), "method", "model_sha256", "blastoseg_version",
            *provenance_columns({}, "")]


def table_paths(stem: str | os.PathLike) -> dict[str, Path]:
    """<stem>_cells.csv, <stem>_frames.csv and <stem>_embryos.csv."""
    stem = Path(stem)
    base = stem.name[: -len(".csv")] if stem.name.lower().endswith(".csv") else stem.name
    return {t: stem.with_name(f"{base}_{t}.csv") for t in TABLES}


def write_tables(
    tables: Mapping[str, pd.DataFrame], stem: str | os.PathLike, on_exists: Literal["rename", "overwrite"] = "rename"
) -> dict[str, Path]:
    """Write the tables under `stem`, escaped and atomically; existing files are kept and
    the next free stem (<stem>-2, -3, ...) is used unless `on_exists` is "overwrite"."""
    from blastoseg.tables import write_table

    paths, k = table_paths(stem), 2
    while on_exists == "rename" and any(p.exists() for p in paths.values()):
        paths = table_paths(Path(stem).with_name(f"{table_paths(stem)['cells'].name[: -len('_cells.csv')]}-{k}"))
        k += 1
    return {t: write_table(tables[t], paths[t]) for t in TABLES if t in tables}
