"""The file-level API: segment an image file, measure result files.

The command line, napari's reader and batch runs share these, so a result file written
by one door reads the same in every other.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from blastoseg.instances import Instances
    from blastoseg.measure import Measurements
    from blastoseg.model import Model

Progress = Callable[[int, int], None]


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
    from blastoseg import __version__, io
    from blastoseg.inference import preprocess
    from blastoseg.inference.embryo import zona_labels
    from blastoseg.inference.predict import analyse_frames

    frames = preprocess.as_frames(io.read_image(path), notify=lambda m: print(f"blastoseg: {path.name}: {m}", file=sys.stderr))
    results = analyse_frames(frames, model, tta=tta, tile=tile, device=device, progress=progress, auto_scale=auto_scale)
    found = [r.cells for r in results]
    provenance = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256,
                  "source": str(path), "tta": str(tta), "blastoseg_version": __version__}
    stem = path.name.split(".")[0]
    one = len(found) == 1
    if any(r.embryo is not None for r in results):
        shape = frames.shape[1:]
        zona = np.stack([zona_labels(r.embryo, shape) if r.embryo else np.zeros(shape, np.uint8) for r in results])
        io.write_labels(out_dir / f"{stem}_zona.tif", zona[0] if one else zona)
    if any(r.fragments is not None for r in results):
        shape = frames.shape[1:]
        pieces = np.stack([fragment_labels(r.fragments, shape) for r in results])
        io.write_labels(out_dir / f"{stem}_fragments.tif", pieces[0] if one else pieces)
    visible = np.stack([f.visible_labels() for f in found]).astype(np.uint16)
    labels = io.write_labels(out_dir / f"{stem}_visible.tif", visible[0] if one else visible)
    embryos = [r.embryo.as_dict() if r.embryo else None for r in results]
    amodal = io.write_amodal(out_dir / f"{stem}_amodal.tif", found[0] if one else found, provenance, embryos)
    return amodal, labels, sum(len(f) for f in found)


def fragment_labels(fragments: Instances | None, shape: tuple[int, int]) -> np.ndarray:
    """uint16 (H, W): fragment k labelled k (fragments do not overlap one another)."""
    if fragments is None or not len(fragments):
        return np.zeros(shape, np.uint16)
    return fragments.visible_labels().astype(np.uint16)


def read_fragments(amodal_path: Path) -> list[Instances] | None:
    """The fragments beside a result (`<stem>_fragments.tif`), one Instances per frame, or None."""
    from blastoseg import io
    from blastoseg.instances import FRAGMENT, Instances

    path = amodal_path.with_name(amodal_path.name.replace("_amodal.tif", "_fragments.tif"))
    if path == amodal_path or not path.is_file():
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
        image = provenance.get("source") or path.name.replace("_amodal.tif", "")
        prov = {"image": Path(image).name, "method": provenance.get("method", ""), "model_sha256": provenance.get("model_sha256", "")}
        fragments = read_fragments(path)
        if fragments is not None and len(fragments) != len(frames):
            raise ValueError(f"{path.name} holds {len(frames)} frames but its _fragments.tif {len(fragments)}; "
                             "segment the image again to rewrite both")
        results.append(measure_frames(frames, pixel_size=pixel_size, frame_interval_h=frame_interval_h, provenance=prov,
                                      embryos=io.read_embryos(path) or None, fragments=fragments))
    if len(results) == 1:
        return results[0]
    cells = pd.concat([r.cells for r in results], ignore_index=True)
    per_frame = pd.concat([r.frames for r in results], ignore_index=True)
    return Measurements(cells, per_frame, {}, frame_interval_h)
