"""The zona localiser on synthetic acquisitions (well views, cut and off-centre embryos, text,
debris, JPEG, four modalities): the set its rules are chosen on.

    python -m benchmarks.localise_synthetic [--n 150] [--seed 4040] [--size 320] [--empty 100] [--deep-cut 50] [--localiser classical]

Per frame, as `benchmarks.localise_real` measures the real frames: the share of the true
cells' and fragments' pixels inside the found `inside_mask` (~1.0 is right) and the share
of that disc they cover (a well's disc is mostly empty medium). A frame is *on the
embryo* when at least 95 % of its cells lie inside and they cover at least 40 % of the
disc. The zona IoU compares the found outer disc with the true region inside the zona's
outer edge. Then wells with no embryo, where none must be found, and embryos cut beyond
their centre (`training.zona.deep_cut` of whole embryos, seeds 20000 on): the zona IoU
within the frame and the outer radius's error. Prints one JSON line: those figures
overall and per view, the empty wells and the deep cuts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from benchmarks.localise_real import add_localiser_options, localiser_from

if TYPE_CHECKING:
    from blastoseg.inference.embryo import Embryo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=150)
    parser.add_argument("--seed", type=int, default=4040)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--empty", type=int, default=100, help="wells with no embryo (synth_dish, seeds 10000 on)")
    parser.add_argument("--deep-cut", type=int, default=50, help="embryos cut beyond their centre (seeds 20000 on)")
    add_localiser_options(parser)
    args = parser.parse_args()
    find_embryo = localiser_from(args)
    from blastoseg.synth import synth_dish, synth_embryo
    from blastoseg.synth.acquisition import Acquisition

    rng = np.random.default_rng(args.seed)
    shape = (args.size, args.size)
    rows, seconds = [], []
    for _ in range(args.n):
        acq = Acquisition.sample(np.random.default_rng(rng.integers(2**31)), shape)
        sample = synth_embryo(shape, seed=rng, acquisition=acq)
        union = (sample.instances.coverage() > 0) | sample.fragments
        start = time.perf_counter()
        embryo = find_embryo(sample.image)
        seconds.append(time.perf_counter() - start)
        view = "well" if acq.well is not None else "no well"
        if embryo is None or not union.any():
            rows.append({"view": view, "found": embryo is not None, "inside": 0.0, "covered": 0.0, "zona_iou": 0.0})
            continue
        inside = embryo.inside_mask(shape)
        rows.append({"view": view, "found": True, "inside": float((union & inside).sum() / union.sum()),
                     "covered": float((union & inside).sum() / max(inside.sum(), 1)),
                     "zona_iou": zona_iou(embryo, sample.zona)})

    def summary(part: list[dict]) -> dict:
        on = [r["inside"] >= 0.95 and r["covered"] >= 0.4 for r in part]
        return {"frames": len(part), "found": sum(r["found"] for r in part), "on_embryo": int(sum(on)),
                "inside_mean": round(float(np.mean([r["inside"] for r in part])), 4),
                "covered_mean": round(float(np.mean([r["covered"] for r in part])), 4),
                "zona_iou_mean": round(float(np.mean([r["zona_iou"] for r in part])), 4)}

    report = {"overall": summary(rows), **{view: summary([r for r in rows if r["view"] == view]) for view in ("well", "no well")},
              "seconds_mean": round(float(np.mean(seconds)), 3)}
    if args.empty:
        wrong = sum(find_embryo(synth_dish(shape, seed=10000 + i).image) is not None for i in range(args.empty))
        report["empty_wells"] = {"frames": args.empty, "with_an_embryo_found": int(wrong)}
    if args.deep_cut:
        report["cut_beyond_centre"] = deep_cuts(find_embryo, args.deep_cut, shape)
    print(json.dumps(report))


def zona_iou(embryo: Embryo, zona: np.ndarray) -> float:
    """IoU of the found outer disc with the true region inside the zona's outer edge
    (`zona` labels >= 1), both within the frame."""
    disc, truth = embryo.inside_mask(zona.shape) | embryo.zona_mask(zona.shape), zona >= 1
    return float((disc & truth).sum() / max((disc | truth).sum(), 1))


def deep_cuts(find_embryo: Callable[[np.ndarray], Embryo | None], n: int, shape: tuple[int, int]) -> dict:
    """Zona IoU (within the frame) and relative outer-radius error on `n` embryos whose
    frame is cut beyond their centre; frames where the cut was not possible are skipped."""
    from blastoseg.synth import synth_embryo
    from blastoseg.training.zona import deep_cut

    ious, radius_errors, found, frames = [], [], 0, 0
    for i in range(n):
        rng = np.random.default_rng(20000 + i)
        sample = synth_embryo(shape, seed=rng, acquisition=True)
        image, zona = deep_cut(sample.image, sample.zona, rng)
        if zona is sample.zona:
            continue
        frames += 1
        embryo = find_embryo(image)
        true_radius = float(np.sqrt((sample.zona >= 1).sum() / np.pi))
        if embryo is None:
            ious.append(0.0)
            continue
        found += 1
        ious.append(zona_iou(embryo, zona))
        radius_errors.append(abs(embryo.outer_radius - true_radius) / true_radius)
    return {"frames": frames, "found": found, "zona_iou_mean": round(float(np.mean(ious)), 4) if ious else None,
            "outer_radius_error_median": round(float(np.median(radius_errors)), 4) if radius_errors else None}


if __name__ == "__main__":
    main()
