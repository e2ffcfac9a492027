"""Time-lapses stored one file per frame: EmbryoScope export folders, plain folders of
frames, the frames' order and their times.

An EmbryoScope export holds `<slide>/WELLnn/F<focal>/NNN.jpg`: one time-lapse per well
and focal plane (F0 the central plane, F-15, F15, ... above and below it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from blastoseg.batch.naming import image_stem, is_image_name, is_result_name

WELL = re.compile(r"^well\d+$", re.IGNORECASE)
FOCAL = re.compile(r"^F(-?\d+)$", re.IGNORECASE)
# "12.5h", "_12.5h", "-36h", "40.1 hours" at a separator: hours since insemination as
# some exports put them in frame names. "RUN141" or a date's digits do not match.
HOURS_IN_NAME = re.compile(r"(?:^|[^0-9A-Za-z.])(\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?(?=$|[^A-Za-z])", re.IGNORECASE)
EXIF_DATETIME_ORIGINAL, TIFF_DATETIME = 36867, 306


@dataclass(frozen=True)
class Frames:
    """One time-lapse: its frame files in order and where they came from."""

    name: str
    folder: Path
    paths: tuple[Path, ...]
    well: str = ""
    focal: str = ""


def natural_key(name: str) -> list[object]:
    """Sort key that orders `2.jpg` before `10.jpg` (digit runs compared as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files of a folder in natural order, results and hidden files left out."""
    files = [p for p in folder.iterdir() if p.is_file() and is_image_name(p) and not is_result_name(p)]
    return sorted(files, key=lambda p: natural_key(p.name))


def focal_label(focal: str | int) -> str:
    """`0`, `F0`, `-15`, `f-15` -> `F0`, `F-15`."""
    text = str(focal).strip()
    match = FOCAL.match(text) or re.match(r"^(-?\d+)$", text)
    if match is None:
        raise ValueError(f"--focal takes a focal plane such as 0, 15, -15 or F-15; got {focal!r}")
    return f"F{int(match.group(1))}"


def _subdirs(folder: Path, pattern: re.Pattern[str]) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and pattern.match(p.name)), key=lambda p: natural_key(p.name))


def is_export(folder: Path) -> bool:
    """True for an EmbryoScope export: a slide folder (WELLnn/F<focal>/), a folder of
    slides, or one well's folder."""
    return bool(_slides(folder)) or _is_well(folder)


def _is_well(folder: Path) -> bool:
    return bool(WELL.match(folder.name)) and bool(_subdirs(folder, FOCAL))


def _slides(folder: Path) -> list[Path]:
    if any(_is_well(w) for w in _subdirs(folder, WELL)):
        return [folder]
    return [s for s in sorted(p for p in folder.iterdir() if p.is_dir()) if any(_is_well(w) for w in _subdirs(s, WELL))]


def export_timelapses(folder: Path, focal: str) -> tuple[list[Frames], list[tuple[str, str, str]]]:
    """The time-lapses of an export at focal plane `focal`, and (input, name, problem) for
    each well that has no such plane or no frames in it."""
    wells = [folder] if _is_well(folder) else [w for s in _slides(folder) for w in _subdirs(s, WELL) if _is_well(w)]
    found, problems = [], []
    for well in wells:
        planes = {p.name.upper(): p for p in _subdirs(well, FOCAL)}
        plane = planes.get(focal.upper())
        slide = well.resolve().parent.name
        name = f"{slide}_{well.name}_{focal}"
        if plane is None:
            problems.append((str(well / focal), name, f"no focal plane {focal} in {well} (it has {', '.join(planes)}); choose one with --focal"))
            continue
        files = frame_files(plane)
        if not files:
            problems.append((str(plane), name, f"no image files in {plane}"))
            continue
        found.append(Frames(f"{slide}_{well.name}_{plane.name}", plane, tuple(files), well.name, plane.name))
    return found, problems


def folder_timelapse(folder: Path) -> Frames:
    """A plain folder of frames as one time-lapse, in natural order of the file names."""
    files = frame_files(folder)
    if not files:
        raise ValueError(f"no image files in {folder} to read as a time-lapse")
    return Frames(folder.resolve().name, folder, tuple(files))


def frame_times(paths: Sequence[Path], interval_h: float | None) -> tuple[list[float] | None, str]:
    """Hours of each frame and where they came from: the file names ("names", hours since
    insemination as exported), the files' recorded date and time ("metadata", hours since
    the first frame), `interval_h` ("interval"), or (None, "") when nothing says."""
    named = [HOURS_IN_NAME.findall(image_stem(p)) for p in paths]
    if all(len(found) == 1 for found in named):
        hours = [float(found[0]) for found in named]
        if _increasing(hours):
            return hours, "names"
    stamps = [_recorded_time(p) for p in paths]
    if all(s is not None for s in stamps):
        hours = [(s - stamps[0]).total_seconds() / 3600 for s in stamps]  # type: ignore[operator]
        if _increasing(hours):
            return hours, "metadata"
    if interval_h is not None:
        return [i * interval_h for i in range(len(paths))], "interval"
    return None, ""


def _increasing(values: list[float]) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))


def _recorded_time(path: Path) -> dt.datetime | None:
    """When the frame was taken, from EXIF DateTimeOriginal or the TIFF DateTime tag."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            exif = image.getexif()
            text = exif.get_ifd(0x8769).get(EXIF_DATETIME_ORIGINAL) or exif.get(TIFF_DATETIME)
    except Exception:  # an unreadable header is reported by the input check, not here
        return None
    try:
        return dt.datetime.strptime(str(text).strip(), "%Y:%m:%d %H:%M:%S") if text else None
    except ValueError:
        return None
