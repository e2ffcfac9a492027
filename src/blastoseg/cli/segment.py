"""`blastoseg segment`: image files, folders and time-lapses in; amodal and visible label
files, a manifest and (for time-lapses) per-well tables out. See docs/batch.md."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from blastoseg.cli.common import check_positive, warn

TILE_MIN = 32  # as inference.predict.MIN_SIDE, without importing torch here


def run(args: argparse.Namespace) -> int:
    """Exit code 0 when every input is done or kept; when some fail, 1 if the machine
    is at fault for one (a full disk, no memory) or some input succeeded, 2 when every
    input is bad. Each failed input gets one `error:` line naming it and the problem."""
    from blastoseg import limits
    from blastoseg.batch import runner
    from blastoseg.batch.cluster import cores, worker_threads
    from blastoseg.batch.inputs import collect
    from blastoseg.batch.tasks import Options
    from blastoseg.catalogue import default_model_name

    # Options are refused before any input is read or any folder made.
    check_positive(args.frame_interval, "frame interval", "hours between frames", "--frame-interval")
    check_positive(args.pixel_size, "pixel size", "micrometres per pixel", "--pixel-size")
    if args.tile is not None and args.tile < TILE_MIN:
        raise ValueError(f"tile size {args.tile} is too small; use at least {TILE_MIN} pixels, or leave it on auto")
    limits.max_pixels()  # a garbled BLASTOSEG_MAX_PIXELS is one error, not one per input
    if args.workers is not None and args.scheduler:
        raise ValueError("give --workers (a cluster on this machine) or --scheduler (an existing cluster), not both")
    threads = worker_threads(args.workers, args.threads) if args.workers is not None else args.threads
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be at least 1; got {threads}")
    if args.workers is not None and args.workers * threads > cores():
        warn(f"{args.workers} workers x {threads} torch threads exceed the {cores()} cores here; the tasks will compete for them")
    notice = lambda message: print(f"blastoseg: {message}", file=sys.stderr)  # noqa: E731
    tasks = collect(args.images, args.as_timelapse, args.focal, args.frame_interval, notice)
    if not tasks:
        raise ValueError("nothing to segment: no image files among the inputs")
    model = args.model or default_model_name()
    if Path(model).suffix == ".safetensors":
        model = os.path.abspath(model)  # workers elsewhere resolve paths from another folder
    runner.check_model(model)
    options = Options(model, os.path.abspath(args.output), not args.no_tta, args.tile, args.device,
                      not args.no_rescale, args.overwrite, args.pixel_size, threads)
    summary = runner.run(tasks, options, args.workers, args.scheduler, notice)
    done, skipped, failed = summary.count("done"), summary.count("skipped"), summary.failed
    print(f"{done} done, {skipped} skipped, {len(failed)} failed; manifest: {summary.manifest}")
    for outcome in failed:
        where = outcome.task.input
        print(f"blastoseg segment: error: {outcome.error if where in outcome.error else f'{where}: {outcome.error}'}",
              file=sys.stderr)
    if not failed:
        return 0
    every_input_bad = done == 0 and skipped == 0 and all(o.bad_input for o in failed)
    return 2 if every_input_bad else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment images, folders and time-lapses; write <name>_amodal.tif and <name>_visible.tif")
    p.add_argument("images", nargs="+", metavar="INPUTS",
                   help="TIFF/PNG/JPEG frames or (T, H, W) stacks, folders of them, or EmbryoScope export folders")
    p.add_argument("-o", "--output", required=True, help="output folder (it also gets manifest.csv)")
    p.add_argument("-m", "--model", default=None, help="model name (see `blastoseg info`) or .safetensors path; default: the best shipped model")
    p.add_argument("--no-tta", action="store_true", help="skip the 8-fold test-time augmentation (8x faster)")
    p.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: automatic)")
    p.add_argument("--no-rescale", action="store_true",
                   help="never segment a frame again, shrunk, when its objects are far larger than the model's training objects")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("--overwrite", action="store_true", help="replace existing results (by default they are kept and skipped)")
    lapse = p.add_argument_group("time-lapses")
    lapse.add_argument("--as-timelapse", action="store_true", help="read each folder given as one time-lapse, frames in natural name order")
    lapse.add_argument("--focal", default="0", help="focal plane of EmbryoScope exports (F<focal> folders; default 0)")
    lapse.add_argument("--frame-interval", type=float, default=None,
                       help="hours between frames, where neither the file names nor their metadata give times")
    lapse.add_argument("--pixel-size", type=float, default=1.0, help="micrometres per pixel for the per-well tables (default 1)")
    dask = p.add_argument_group("distributed (Dask)")
    dask.add_argument("--workers", type=int, default=None, help="run N worker processes on this machine (a Dask LocalCluster)")
    dask.add_argument("--scheduler", default=None, metavar="ADDRESS", help="send the tasks to an existing Dask scheduler, e.g. tcp://host:8786")
    dask.add_argument("--threads", type=int, default=None,
                      help="torch threads per worker (default: the cores divided among the workers)")
    p.set_defaults(func=run)
