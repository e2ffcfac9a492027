"""The zona localiser on the real annotated EmbryoScope frames: a check, never a tuning set.

    python -m benchmarks.localise_real                                   # JSON, one line per frame, then overall
    python -m benchmarks.localise_real --overlays /tmp/localise_overlays
    python -m benchmarks.localise_real --localiser classical

Per frame: whether an embryo was found, its centre and radii, the share of annotated cell
and fragment pixels inside `inside_mask` (they all lie inside the zona, so ~1.0 is right),
the share of `inside_mask` they cover (the perivitelline space keeps it below 1), whether
any annotated pixel lies beyond the outer radius, and seconds per frame. An overlay PNG per
frame (outer circle red, inner green, annotations blue) is saved for judging by eye.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.datasets import RealFrame, real_embryos

if TYPE_CHECKING:
    from blastoseg.inference.embryo import Embryo


def add_localiser_options(parser: argparse.ArgumentParser) -> None:
    from blastoseg.inference.localise import DEFAULT_LOCALISER, LOCALISERS

    parser.add_argument("--localiser", choices=LOCALISERS, default=DEFAULT_LOCALISER)
    parser.add_argument("--weights", type=Path, default=None, help="another zona network than the shipped one")


def localiser_from(args: argparse.Namespace) -> Callable[[np.ndarray], Embryo | None]:
    """frame -> Embryo | None, as the options chose."""
    from blastoseg.inference.localise import find_embryo

    return lambda frame: find_embryo(frame, args.localiser, args.weights)


def annotated_union(frame: RealFrame) -> np.ndarray:
    """Bool (H, W): any cell or fragment annotated on the frame."""
    return (frame.cells.coverage() > 0) | (frame.fragments > 0)


def overlay(frame: np.ndarray, embryo, union: np.ndarray) -> np.ndarray:
    """RGB uint8: the frame, annotation outlines in blue, the fitted circles in red and green."""
    from skimage.segmentation import find_boundaries

    rgb = np.repeat(frame[..., None], 3, -1).astype(np.uint8)
    edge = find_boundaries(union)
    rgb[edge] = (60, 120, 255)
    if embryo is not None:
        yy, xx = np.ogrid[: frame.shape[0], : frame.shape[1]]
        d = np.hypot(yy - embryo.centre[0], xx - embryo.centre[1])
        for radius, colour in (
            (embryo.outer_radius, (255, 40, 40)),
            (embryo.inner_radius, (40, 255, 40)),
        ):
            rgb[np.abs(d - radius) < 1.5] = colour
    return rgb


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--overlays",
        type=Path,
        default=Path("/tmp/localise_overlays"),
        help="where overlay PNGs go",
    )
    add_localiser_options(parser)
    args = parser.parse_args()
    frames = real_embryos()

    import imageio.v3 as iio

    find_embryo = localiser_from(args)
    args.overlays.mkdir(parents=True, exist_ok=True)
    rows = []
    for real in frames:
        frame = real.image
        find_embryo(frame)  # first call pays for imports and caches
        t0 = time.perf_counter()
        embryo = find_embryo(frame)
        seconds = time.perf_counter() - t0
        union = annotated_union(real)
        row: dict = {
            "frame": real.name,
            "found": embryo is not None,
            "seconds": round(seconds, 3),
        }
        if embryo is not None:
            inside = embryo.inside_mask(frame.shape)
            within_outer = inside | embryo.zona_mask(frame.shape)
            row |= {
                "centre": [round(v, 1) for v in embryo.centre],
                "outer_radius": round(embryo.outer_radius, 1),
                "inner_radius": round(embryo.inner_radius, 1),
                "score": round(embryo.score, 3),
                "cut": embryo.is_cut(frame.shape),
                "annotated_inside": round(
                    float((union & inside).sum() / max(union.sum(), 1)), 4
                ),
                "inside_covered": round(
                    float((union & inside).sum() / max(inside.sum(), 1)), 4
                ),
                "annotated_beyond_outer": bool((union & ~within_outer).any()),
                "annotated_beyond_outer_fraction": round(
                    float((union & ~within_outer).sum() / max(union.sum(), 1)), 4
                ),
            }
        rows.append(row)
        print(json.dumps(row))
        iio.imwrite(args.overlays / f"{real.name}.png", overlay(frame, embryo, union))
    found = [r for r in rows if r["found"]]
    summary = {
        "frames": len(rows),
        "found": len(found),
        "annotated_inside_mean": round(
            float(np.mean([r["annotated_inside"] for r in found])), 4
        )
        if found
        else None,
        "inside_covered_mean": round(
            float(np.mean([r["inside_covered"] for r in found])), 4
        )
        if found
        else None,
        "frames_with_annotation_beyond_outer": sum(
            r["annotated_beyond_outer"] for r in found
        ),
        "seconds_mean": round(float(np.mean([r["seconds"] for r in rows])), 3),
        "seconds_max": round(float(np.max([r["seconds"] for r in rows])), 3),
        "overlays": str(args.overlays),
    }
    print(json.dumps({"overall": summary}))


if __name__ == "__main__":
    main()
