"""`blastoseg measure`: amodal result files -> per-cell and per-frame CSV tables; a results
folder -> one set of cells, frames and embryos tables for all of it."""

from __future__ import annotations

import argparse
from pathlib import Path

FOLDER_STEM = "measurements"


def run(args: argparse.Namespace) -> int:
    from blastoseg.cli.common import check_positive

    check_positive(args.pixel_size, "pixel size", "micrometres per pixel", "--pixel-size")
    check_positive(args.frame_interval, "frame interval", "hours between frames", "--frame-interval")
    paths = [Path(p) for p in args.outputs]
    if len(paths) == 1 and paths[0].is_dir():
        return _folder(paths[0], args)
    if any(p.is_dir() for p in paths):
        raise ValueError("give one results folder, or *_amodal.tif files; not folders among files")
    if args.output is None:
        raise ValueError("-o/--output is required when measuring files; name the CSV to write")
    from blastoseg.files import measure_files
    from blastoseg.measure import write_csv

    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no result file at {path}; give the *_amodal.tif files that `blastoseg segment` wrote")
    measurements = measure_files(paths, args.pixel_size, args.frame_interval)
    cells, frames = write_csv(measurements, args.output)
    print(f"{len(measurements.cells)} cells in {len(measurements.frames)} frames -> {cells}, {frames}")
    if measurements.cleavage and any(v is not None for v in measurements.cleavage.values()):
        print("cleavage frames: " + ", ".join(f"{k}={v}" for k, v in measurements.cleavage.items()))
    return 0


def _folder(folder: Path, args: argparse.Namespace) -> int:
    from blastoseg.batch.exports import measure_folder, write_tables

    tables = measure_folder(folder, args.pixel_size, args.frame_interval)
    written = write_tables(tables, args.output or folder / FOLDER_STEM)
    n = {name: len(table) for name, table in tables.items()}
    print(f"{n['cells']} cells in {n['frames']} frames, {n['embryos']} time-lapses -> "
          + ", ".join(str(p) for p in written.values()))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("measure", help="measure blastomeres in *_amodal.tif results or a results folder; write CSV tables")
    p.add_argument("outputs", nargs="+", metavar="RESULTS",
                   help="*_amodal.tif files written by `blastoseg segment`, or one results folder")
    p.add_argument("-o", "--output", default=None, metavar="CSV",
                   help="CSV name; <stem>_cells.csv and <stem>_frames.csv are written (and <stem>_embryos.csv for a folder; "
                        f"default there: RESULTS/{FOLDER_STEM}_*.csv). Existing files are kept: a free name -2, -3, ... is used")
    p.add_argument("--pixel-size", type=float, default=1.0, help="micrometres per pixel (default 1)")
    p.add_argument("--frame-interval", type=float, default=None,
                   help="hours between frames of a time-lapse (results that stored their frames' times keep those)")
    p.set_defaults(func=run)
