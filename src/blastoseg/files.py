"""The file-level API: segment an image file or a time-lapse of frames, measure result files.

The command line, napari's reader and batch runs share these, so a result file written
by one door reads the same in every other. Output names come from
`batch.naming.image_stem`: the whole file name minus its image suffix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blastoseg.batch.naming import AMODAL, FRAGMENTS, VISIBLE, ZONA, image_stem

if TYPE_CHECKING:
    from blastoseg.instances import Instances
    from blastoseg.measure import Measurements
    from blastoseg.model import Model

Progress = Callable[[int, int], None]
# Called with the frames' cells and embryos before the amodal file is written: files it
# writes then belong to the result, which the amodal file, written last, completes.
BeforeAmodal = Callable[[list["Instances"], list[dict[str, Any] | None]], list[Path]]


@dataclass(frozen=True)
class Written:
    """The files one segmentation wrote (amodal last) and what they hold."""

    amodal: Path
    visible: Path
    others: tuple[Path, ...]
    cells: int
    frames: int

    @property
    def paths(self) -> tuple[Path, ...]:
        return (*self.others, self.visible, self.amodal)


def segment_file(
    path: Path,
    model: Model,
    out_dir: Path,
    tta: bool = True,
    tile: int | None = None,
    device: str = "auto",
    auto_scale: bool = True,
    progress: Progress | None = None,
) -> tuple[Path, Path, int]:
    """Segment one image file; write `<stem>_amodal.tif` and `<stem>_visible.tif`,
    `<stem>_zona.tif` (1 = zona, 2 = the space inside it) for a model that localises
    embryos, and `<stem>_fragments.tif` (a label per fragment) for one that finds
    fragments. `progress(done, total)` counts network passes (`analyse_frames`)."""
    from blastoseg import io

    path = Path(path)
    image = io.read_image(path)
    written = segment_image(image, image_stem(path), model, out_dir, source=str(path), tta=tta, tile=tile, device=device,
                            auto_scale=auto_scale, progress=progress, label=path.name)
    return written.amodal, written.visible, written.cells


def segment_image(
    image: np.ndarray,
    stem: str,
    model: Model,
    out_dir: Path,
    source: str,
    tta: bool = True,
    tile: int | None = None,
    device: str = "auto",
    auto_scale: bool = True,
    progress: Progress | None = None,
    provenance: Mapping[str, str] | None = None,
    before_amodal: BeforeAmodal | None = None,
    label: str | None = None,
) -> Written:
    """Segment a frame or a (T, H, W) stack and write its result files under `stem`.

    Every file is written atomically and `<stem>_amodal.tif` last, so a run stopped at
    any moment leaves either a whole result or one without its amodal file, which
    `batch` redoes. `provenance` adds entries to the amodal file's record."""
    from blastoseg import __version__, io
    from blastoseg.inference import preprocess
    from blastoseg.inference.predict import analyse_frames

    label = label or stem
    frames = preprocess.as_frames(image, notify=lambda m: print(f"blastoseg: {label}: {m}", file=sys.stderr))
    results = analyse_frames(frames, model, tta=tta, tile=tile, device=device, progress=progress, auto_scale=auto_scale)
    found = [r.cells for r in results]
    record = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256,
              "source": source, "tta": str(tta), "blastoseg_version": __version__, **(provenance or {})}
    one = len(found) == 1
    others: list[Path] = []
    zona, pieces = zona_stack(results, frames.shape[1:]), fragment_stack(results, frames.shape[1:])
    if zona is not None:
        others.append(io.write_labels(out_dir / f"{stem}{ZONA}", zona[0] if one else zona))
    if pieces is not None:
        others.append(io.write_labels(out_dir / f"{stem}{FRAGMENTS}", pieces[0] if one else pieces))
    visible = np.stack([f.visible_labels().astype(np.uint16) for f in found])  # per frame: a long stack is not held twice
    labels = io.write_labels(out_dir / f"{stem}{VISIBLE}", visible[0] if one else visible)
    embryos = [r.embryo.as_dict() if r.embryo else None for r in results]
    if before_amodal is not None:
        others.extend(before_amodal(found, embryos))
    amodal = io.write_amodal(out_dir / f"{stem}{AMODAL}", found[0] if one else found, record, embryos)
    return Written(amodal, labels, tuple(others), sum(len(f) for f in found), len(found))


def read_frames(paths: Sequence[Path]) -> np.ndarray:
    """The frames of a time-lapse stored one file per frame, as one (T, H, W) float32 stack,
    filled in place: a list of frames joined at the end would hold the stack twice."""
    from blastoseg import io
    from blastoseg.inference import preprocess

    stack: np.ndarray | None = None
    for t, path in enumerate(paths):
        frame = preprocess.as_frames(io.read_image(path))
        if len(frame) != 1:
            raise ValueError(f"a time-lapse folder holds one frame per file; {path.name} in {path.parent} holds {len(frame)}")
        if stack is None:
            stack = np.empty((len(paths), *frame.shape[1:]), np.float32)
        elif frame.shape[1:] != stack.shape[1:]:
            raise ValueError(f"the frames of a time-lapse must share one size; {path.name} is {frame.shape[1:]}, "
                             f"{paths[0].name} {stack.shape[1:]}")
        stack[t] = frame[0]
    if stack is None:
        raise ValueError("a time-lapse needs at least one frame")
    return stack


def zona_stack(results: Sequence[Any], shape: tuple[int, int]) -> np.ndarray | None:
    """uint8 (T, H, W) zona labels of `analyse_frames` results (zeros where none was found),
    or None when no frame has a zona."""
    from blastoseg.inference.embryo import zona_labels

    if all(r.embryo is None for r in results):
        return None
    return np.stack([zona_labels(r.embryo, shape) if r.embryo else np.zeros(shape, np.uint8) for r in results])


def fragment_stack(results: Sequence[Any], shape: tuple[int, int]) -> np.ndarray | None:
    """uint16 (T, H, W) fragment labels of `analyse_frames` results, or None for a model
    that does not find fragments."""
    if all(r.fragments is None for r in results):
        return None
    return np.stack([fragment_labels(r.fragments, shape) for r in results])


def fragment_labels(fragments: Instances | None, shape: tuple[int, int]) -> np.ndarray:
    """uint16 (H, W): fragment k labelled k (fragments do not overlap one another)."""
    if fragments is None or not len(fragments):
        return np.zeros(shape, np.uint16)
    return fragments.visible_labels().astype(np.uint16)


def read_fragments(amodal_path: Path) -> list[Instances] | None:
    """The fragments beside a result (`<stem>_fragments.tif`), one Instances per frame, or None."""
    from blastoseg import io
    from blastoseg.instances import FRAGMENT, Instances

    if not amodal_path.name.endswith(AMODAL):
        return None
    path = amodal_path.with_name(amodal_path.name[: -len(AMODAL)] + FRAGMENTS)
    if not path.is_file():
        return None
    labels = np.asarray(io.read_image(path))
    labels = labels[None] if labels.ndim == 2 else labels
    return [Instances.from_label_image(plane).with_class(FRAGMENT) for plane in labels]


def measure_files(paths: list[Path], pixel_size: float, frame_interval_h: float | None) -> Measurements:
    """One `Measurements` for all result files, rows tagged with their image."""
    import pandas as pd

    from blastoseg import io
    from blastoseg.measure import Measurements, measure_frames

    results = []
    for path in paths:
        frames, provenance = io.read_amodal(path)
        image = provenance.get("source") or (path.name[: -len(AMODAL)] if path.name.endswith(AMODAL) else path.name)
        prov = {"image": Path(image).name, "method": provenance.get("method", ""), "model_sha256": provenance.get("model_sha256", "")}
        fragments = read_fragments(path)
        if fragments is not None and len(fragments) != len(frames):
            raise ValueError(f"{path.name} holds {len(frames)} frames but its {FRAGMENTS} {len(fragments)}; "
                             "segment the image again to rewrite both")
        results.append(measure_frames(frames, pixel_size=pixel_size, frame_interval_h=frame_interval_h, provenance=prov,
                                      embryos=io.read_embryos(path) or None, fragments=fragments))
    if len(results) == 1:
        return results[0]
    cells = pd.concat([r.cells for r in results], ignore_index=True)
    per_frame = pd.concat([r.frames for r in results], ignore_index=True)
    return Measurements(cells, per_frame, {}, frame_interval_h)
