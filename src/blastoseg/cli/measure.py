"""`blastoseg measure`: amodal result files -> per-cell and per-frame CSV tables."""

from __future__ import annotations

import argparse
from pathlib import Path


def run(args: argparse.Namespace) -> int:
    from blastoseg.files import measure_files
    from blastoseg.measure import write_csv

    paths = [Path(p) for p in args.outputs]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no result file at {path}; give the *_amodal.tif files that `blastoseg segment` wrote")
    if args.pixel_size <= 0:
        raise ValueError(f"--pixel-size must be positive (micrometres per pixel); got {args.pixel_size}")
    measurements = measure_files(paths, args.pixel_size, args.frame_interval)
    cells, frames = write_csv(measurements, args.output)
    print(f"{len(measurements.cells)} cells in {len(measurements.frames)} frames -> {cells}, {frames}")
    if measurements.cleavage and any(v is not None for v in measurements.cleavage.values()):
        print("cleavage frames: " + ", ".join(f"{k}={v}" for k, v in measurements.cleavage.items()))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measure", help="measure blastomeres in *_amodal.tif results; write <stem>_cells.csv and <stem>_frames.csv")
    p.add_argument("outputs", nargs="+", metavar="OUTPUTS", help="*_amodal.tif files written by `blastoseg segment`")
    p.add_argument("-o", "--output", required=True, metavar="CSV", help="CSV name; <stem>_cells.csv and <stem>_frames.csv are written")
    p.add_argument("--pixel-size", type=float, default=1.0, help="micrometres per pixel (default 1)")
    p.add_argument("--frame-interval", type=float, default=None, help="hours between frames of a time-lapse")
    p.set_defaults(func=run)
