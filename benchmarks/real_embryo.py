"""Embryo models on real frames: the 6 annotated EmbryoScope frames, and the synthetic test set.

The real frames (`cleavage_embryo/`, evaluation only: never train or tune on them) are
scored against their hand-drawn amodal outlines, one by one and as a 6-frame time-lapse;
the synthetic test embryos give the same table for comparison: 200 clean crops (seed
2026) and 100 synthetic acquisitions (seed 2027: well views, cut embryos, text, JPEG).

    python -m benchmarks.real_embryo                       # the default model, with TTA
    python -m benchmarks.real_embryo -m layered --no-tta
    python -m benchmarks.real_embryo --all                 # every shipped embryo model

Prints JSON: amodal mAP and AP50, exact counts, median area error, fragmentation error
(percentage points), cells predicted outside the annotated embryo, the mean circularity
error of the round cells (hand-drawn circularity >= 0.85, matched at IoU >= 0.5), the
per-frame count curve and the cleavage frames t2..t8 of the time-lapse, and the same on
synthetic embryos.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from skimage.morphology import convex_hull_image

from benchmarks.datasets import RealFrame, real_embryos, synthetic_embryos
from benchmarks.scoring import scores
from blastoseg.instances import Instances

EMBRYO_MODELS = ("vqshape", "layered", "embedseg", "fcrnet")
SYNTHETIC_N, ACQUIRED_N, ACQUIRED_SIZE = 200, 100, 320
OUTSIDE = 0.5  # a predicted cell with less than this share of its area on the embryo is outside it


def fragmentation(cells: Instances, fragments: np.ndarray) -> float:
    """Fragment area / (cells + fragments) area, in percent (the Istanbul consensus measure),
    as `blastoseg measure` reports it."""
    from blastoseg.measure import fragmentation as measured

    return measured(cells, fragments)[1]


def outside_embryo(found: Instances, frame: RealFrame) -> int:
    """Predicted cells lying mostly off the annotated embryo (convex hull of its cells and fragments)."""
    from blastoseg.inference.plausible import inside_fraction

    embryo = convex_hull_image(frame.cells.coverage().astype(bool) | (frame.fragments > 0))
    return int((inside_fraction(found, embryo) < OUTSIDE).sum()) if len(found) else 0


ROUND = 0.85  # hand-drawn circularity from which a cell counts as round


def circularity(mask: np.ndarray) -> float:
    """4 pi area / perimeter^2 of a boolean mask (1 for a disc)."""
    from skimage.measure import regionprops

    props = regionprops(mask.astype(np.uint8))[0]
    return float(4 * np.pi * props.area / max(props.perimeter, 1e-9) ** 2)


def circularity_errors(found: Instances, truth: Instances) -> list[float]:
    """|circularity found - drawn| of the round drawn cells matched (IoU >= 0.5) by a found one."""
    if not len(found) or not len(truth):
        return []
    iou = truth.iou(found)
    errors = []
    for i in range(len(truth)):
        j = int(np.argmax(iou[i]))
        drawn = circularity(truth.mask(i))
        if iou[i, j] >= 0.5 and drawn >= ROUND:
            errors.append(abs(circularity(found.mask(j)) - drawn))
    return errors


def real_report(model: object, tta: bool, device: str) -> dict:
    from blastoseg.inference.predict import analyse_frames
    from blastoseg.measure import cleavage_times

    frames = real_embryos()
    found, fragments, seconds = [], [], []
    for frame in frames:
        start = time.perf_counter()
        (result,) = analyse_frames(frame.image, model, tta=tta, device=device)
        seconds.append(time.perf_counter() - start)
        found.append(result.cells)
        fragments.append(None if result.fragments is None else result.fragments.coverage())
    truth = [f.cells for f in frames]
    counts = [len(f) for f in found]
    true_counts = [len(t) for t in truth]
    predicted_fragmentation = [fragmentation(f, p) if p is not None else 0.0 for f, p in zip(found, fragments)]
    true_fragmentation = [fragmentation(f.cells, f.fragments) for f in frames]
    return {
        "frames": [f.name for f in frames],
        **scores(found, truth, ("mAP", "AP50", "AP_dsb@0.50", "area_error_median")),
        "exact_counts": int(sum(c == t for c, t in zip(counts, true_counts))),
        "counts": counts,
        "true_counts": true_counts,
        "cells_outside_embryo": int(sum(outside_embryo(f, frame) for f, frame in zip(found, frames))),
        "fragmentation_error_pp": [round(abs(p - t), 2) for p, t in zip(predicted_fragmentation, true_fragmentation)],
        "fragments_predicted": any(p is not None for p in fragments),
        "circularity_error_round_cells": _mean([e for f, t in zip(found, truth) for e in circularity_errors(f, t)]),
        "cleavage_frames": cleavage_times(counts),
        "true_cleavage_frames": cleavage_times(true_counts),
        "seconds_per_frame": round(float(np.mean(seconds)), 3),
    }


def _mean(values: list[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def synthetic_report(model: object, tta: bool, device: str, n: int, acquired: bool = False) -> dict:
    from blastoseg.inference.predict import segment

    samples = synthetic_embryos(n, size=ACQUIRED_SIZE if acquired else 256, acquired=acquired)
    found = [segment(s.image, model, tta=tta, device=device) for s in samples]
    truth = [s.instances for s in samples]
    return {"n_images": n, **scores(found, truth, ("mAP", "AP50", "AP_dsb@0.50", "area_error_median")),
            "exact_counts": int(sum(len(f) == len(t) for f, t in zip(found, truth)))}


def main() -> None:
    from blastoseg.catalogue import DEFAULT_MODEL
    from blastoseg.checkpoint import load

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-m", "--model", default=DEFAULT_MODEL, help=f"model name or path (default {DEFAULT_MODEL})")
    parser.add_argument("--all", action="store_true", help="every shipped embryo model")
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--synthetic", type=int, default=SYNTHETIC_N, help=f"synthetic test embryos (default {SYNTHETIC_N}; 0 skips)")
    parser.add_argument("--acquired", type=int, default=ACQUIRED_N,
                        help=f"synthetic acquisitions (default {ACQUIRED_N}; 0 skips)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    for name in EMBRYO_MODELS if args.all else (args.model,):
        model = load(name, device=args.device)
        report = {"model": name, "sha256": model.sha256[:12], "tta": not args.no_tta,
                  "real": real_report(model, not args.no_tta, args.device)}
        if args.synthetic:
            report["synthetic"] = synthetic_report(model, not args.no_tta, args.device, args.synthetic)
        if args.acquired:
            report["synthetic_acquired"] = synthetic_report(model, not args.no_tta, args.device, args.acquired, acquired=True)
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
