"""What `blastoseg segment` was given, as tasks: one image file, or one time-lapse stored
one file per frame. Every input is checked (its header, its shape) before a model loads,
so a corrupt file among thousands fails alone and at once."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from blastoseg.batch import timelapse
from blastoseg.batch.naming import AMODAL, image_stem, is_image_name, is_result_name

MIN_SIDE = 16  # as inference.preprocess.MIN_SIDE, without importing numpy here
Notice = Callable[[str], None]


@dataclass(frozen=True)
class Task:
    """One unit of work: an image file, or a time-lapse's frame files, and its result name."""

    input: str
    name: str
    sources: tuple[str, ...]
    timelapse: bool = False
    times_h: tuple[float, ...] | None = None
    times_from: str = ""
    well: str = ""
    focal: str = ""
    problem: str = ""  # found before any work: the task fails without running

    @property
    def kind(self) -> str:
        return "timelapse" if self.timelapse else "image"


def collect(
    inputs: Sequence[str | os.PathLike],
    as_timelapse: bool = False,
    focal: str = "F0",
    interval_h: float | None = None,
    notice: Notice = print,
) -> list[Task]:
    """Tasks for image files, folders of images, EmbryoScope exports and (`as_timelapse`)
    folders of frames; blastoseg's own result files are skipped with a notice."""
    tasks: list[Task] = []
    for item in inputs:
        # Absolute: a worker elsewhere has another working folder, and a later run from
        # another folder must find the same manifest rows.
        path = Path(os.path.abspath(item))
        if not path.exists():
            raise FileNotFoundError(f"no image file or folder at {path}")
        if path.is_dir():
            tasks.extend(_folder_tasks(path, as_timelapse, timelapse.focal_label(focal), interval_h, notice))
        elif is_result_name(path):
            notice(f"{path.name} is a blastoseg result, not an image: skipped")
        elif not is_image_name(path):
            notice(f"{path.name} is not an image file (.tif, .tiff, .png, .jpg, .jpeg): skipped")
        else:
            tasks.append(Task(str(path), image_stem(path), (str(path),)))
    return _unique(tasks)


def _folder_tasks(folder: Path, as_timelapse: bool, focal: str, interval_h: float | None, notice: Notice) -> list[Task]:
    if timelapse.is_export(folder):
        found, problems = timelapse.export_timelapses(folder, focal)
        failed = [Task(where, name, (), True, problem=problem) for where, name, problem in problems]
        return [_timelapse_task(f, interval_h) for f in found] + failed
    if as_timelapse:
        return [_timelapse_task(timelapse.folder_timelapse(folder), interval_h)]
    results = [p for p in folder.iterdir() if p.is_file() and is_result_name(p)]
    if results:
        notice(f"{folder}: {len(results)} blastoseg result file{'s' * (len(results) != 1)} skipped")
    files = timelapse.frame_files(folder)
    if not files and not results:
        raise ValueError(f"{folder} holds no image files; give image files, a folder of them or an EmbryoScope export")
    return [Task(str(p), image_stem(p), (str(p),)) for p in files]


def _timelapse_task(frames: timelapse.Frames, interval_h: float | None) -> Task:
    times, source = timelapse.frame_times(frames.paths, interval_h)
    return Task(str(frames.folder), frames.name, tuple(str(p) for p in frames.paths), True,
                None if times is None else tuple(times), source, frames.well, frames.focal)


def _unique(tasks: list[Task]) -> list[Task]:
    """Each input once, however often it was named (a glob and its folder, say)."""
    seen: set[str] = set()
    out = []
    for task in tasks:
        key = os.path.realpath(task.input)
        if key not in seen:
            seen.add(key)
            out.append(task)
    return out


def refuse_collisions(tasks: Sequence[Task]) -> None:
    """Raise ValueError naming the inputs whose results would share a name."""
    by_name: dict[str, list[str]] = {}
    for task in tasks:
        by_name.setdefault(task.name, []).append(task.input)
    clashes = {name: inputs for name, inputs in by_name.items() if len(inputs) > 1}
    if clashes:
        name, inputs = next(iter(clashes.items()))
        more = f" (and {len(clashes) - 1} more name{'s' * (len(clashes) > 2)})" if len(clashes) > 1 else ""
        raise ValueError(f"{' and '.join(inputs)} would both write {name}{AMODAL}{more}; "
                         "segment them into different output folders (-o) or rename one")


def header_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The pixel array's shape as the file's header states it, without decoding pixels;
    ValueError in `io.read_image`'s words for a damaged or foreign file."""
    from blastoseg.io import tifffile_quiet, unreadable

    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile_quiet(), tifffile.TiffFile(path) as tif:
                shape = tuple(int(n) for n in tif.series[0].shape)
        else:
            from PIL import Image

            with Image.open(path) as image:
                bands = len(image.getbands())
                width, height = image.size
                shape = (height, width) if bands == 1 else (height, width, bands)
    except Exception as exc:  # a corrupt header raises anything from struct.error to OSError
        raise unreadable(path, exc) from None
    if 0 in shape or not shape:  # tifffile reads some damaged files as no pixels
        raise ValueError(f"cannot read {path}: it holds no pixels (a damaged file?)")
    return shape


def frames_shape(shape: Sequence[int], name: str) -> tuple[int, int, int]:
    """(T, H, W) for a header shape, by `preprocess.as_frames`' rules; ValueError otherwise."""
    shape = tuple(shape)
    colour = len(shape) in (3, 4) and shape[-1] in (3, 4)
    grey = shape[:-1] if colour else shape
    if len(grey) not in (2, 3):
        raise ValueError(f"{name} has shape {shape}; expected a 2D frame (H, W) or a time-lapse (T, H, W)")
    t, h, w = (1, *grey) if len(grey) == 2 else grey
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"{name} is {h}x{w} pixels; frames must be at least {MIN_SIDE}x{MIN_SIDE} pixels")
    return t, h, w


def _checked_shape(path: str) -> tuple[int, int, int]:
    from blastoseg import limits

    shape = header_shape(path)
    limits.check_pixels(shape, Path(path).name)
    return frames_shape(shape, Path(path).name)


def check(task: Task) -> Task:
    """The task, with `problem` set if an input's header is unreadable, its declared size
    over the pixel budget (`limits`) or its shape cannot be segmented (frames of one
    time-lapse must also share one size)."""
    if task.problem:
        return task
    try:
        shapes = {_checked_shape(p) for p in task.sources}
        if task.timelapse:
            if any(t != 1 for t, _, _ in shapes):
                raise ValueError(f"{task.input} holds multi-frame files; a time-lapse folder holds one frame per file")
            if len(shapes) > 1:
                sizes = sorted(f"{h}x{w}" for _, h, w in shapes)
                raise ValueError(f"the frames in {task.input} differ in size ({', '.join(sizes)}); a time-lapse has one size")
    except ValueError as exc:
        return dataclasses.replace(task, problem=str(exc))
    return task
