"""Latency and memory of segmentation, printed as JSON.

    python -m benchmarks.speed latency -m embedseg-nuclei        # 500x500, with and without TTA
    python -m benchmarks.speed latency -m vqshape --embryo      # the same on a synthetic embryo frame
    python -m benchmarks.speed scale -m embedseg-nuclei          # 512^2 .. 8192^2, tiled, per pixel
    python -m benchmarks.speed timelapse -m vqshape --frames 20  # `blastoseg segment --as-timelapse`, 1 and 2 workers

`timelapse` writes an N-frame (default 500) 500x500 synthetic time-lapse as JPEG frames and
times the command line on it, start-up included: in-process, `--workers 1` and
`--workers 2`; peak RSS is that of the whole process tree (the CLI and its Dask workers),
sampled every 0.1 s. `--wells W` splits the frames into W wells of an EmbryoScope-style
export: one time-lapse is one task, so a second worker has something to do only then.

Each measurement runs in a fresh subprocess so that its peak RSS is its own. The script
needs nothing else of `benchmarks`, so `python benchmarks/speed.py ...` runs it too.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _image(side: int, seed: int = 0, embryo: bool = False) -> np.ndarray:
    """A synthetic nucleus-like field (bright blobs on a dark, noisy background), or a
    synthetic embryo frame for the embryo models."""
    from scipy import ndimage

    if embryo:
        from blastoseg.synth import synth_embryo

        return synth_embryo((side, side), seed=seed).image.astype(np.float32)

    rng = np.random.default_rng(seed)
    field = np.zeros((side, side), np.float32)
    n = max(1, side * side // 900)
    field[rng.integers(0, side, n), rng.integers(0, side, n)] = 1
    field = ndimage.grey_dilation(field, size=(9, 9))
    return (ndimage.gaussian_filter(field, 2) + rng.normal(0, 0.05, field.shape)).astype(np.float32)


def _child(model: str, side: int, tta: bool, repeats: int, tile: int | None, threads: int = 2, embryo: bool = False) -> dict:
    import torch

    from blastoseg.checkpoint import load
    from blastoseg.inference.predict import segment

    torch.set_num_threads(threads)
    net = load(model, device="cpu")
    image = _image(side, embryo=embryo)
    segment(image[: min(side, 256), : min(side, 256)], net, tta=tta, device="cpu")  # warm-up
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = len(segment(image, net, tta=tta, tile=tile, device="cpu"))
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"side": side, "tta": tta, "median_s": round(median, 3), "times_s": [round(t, 3) for t in times],
            "us_per_pixel": round(median / side**2 * 1e6, 3), "instances": count,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _run(model: str, side: int, tta: bool, repeats: int, tile: int | None = None, threads: int = 2, embryo: bool = False) -> dict:
    # By file path, not `-m`: the child then runs from any working directory.
    cmd = [sys.executable, __file__, "child", "-m", model, "--side", str(side), "--repeats", str(repeats), "--threads", str(threads)]
    cmd += ["--tta"] if tta else []
    cmd += ["--tile", str(tile)] if tile else []
    cmd += ["--embryo"] if embryo else []
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def _timelapse_input(folder: Path, frames: int, side: int, wells: int) -> Path:
    """N synthetic frames as JPEGs: one folder, or `wells` wells of an export tree."""
    import imageio.v3 as iio

    from blastoseg.synth import synth_timelapse

    per_well = -(-frames // wells)
    for w in range(wells):
        target = folder / "frames" if wells == 1 else folder / "export" / "SLIDE" / f"WELL{w + 1:02d}" / "F0"
        target.mkdir(parents=True, exist_ok=True)
        count = min(per_well, frames - w * per_well)
        for t, sample in enumerate(synth_timelapse(count, (side, side), seed=w)):
            iio.imwrite(target / f"{t + 1:03d}.jpg", (np.clip(sample.image, 0, 1) * 255).astype(np.uint8))
    return folder / "frames" if wells == 1 else folder / "export"


def _tree_rss(pid: int) -> tuple[float, float]:
    """RSS of a process and all its descendants, and of the largest one, in MB."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    sizes = []
    for proc in procs:
        try:
            sizes.append(proc.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:
            pass
    return sum(sizes), max(sizes, default=0.0)


def _timelapse_run(source: Path, out: Path, model: str, tta: bool, workers: int | None, threads: int, wells: int) -> dict:
    import csv
    import os

    cmd = [sys.executable, "-m", "blastoseg", "segment", str(source), "-o", str(out), "-m", model, "--device", "cpu",
           "--frame-interval", "0.25", "--threads", str(threads)]
    cmd += [] if tta else ["--no-tta"]
    cmd += ["--as-timelapse"] if wells == 1 else []
    cmd += ["--workers", str(workers)] if workers else []
    log = out.parent / f"{out.name}.log"  # a file, not a pipe: the progress bars would fill a pipe and stall the child
    start = time.perf_counter()
    with open(log, "w") as err:
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=os.environ.copy())
        peak_total = peak_one = 0.0
        while child.poll() is None:
            total, one = _tree_rss(child.pid)
            peak_total, peak_one = max(peak_total, total), max(peak_one, one)
            time.sleep(0.1)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({child.returncode}): {log.read_text()[-2000:]}")
    with open(out / "manifest.csv", newline="") as handle:
        task_s = [float(row["seconds"]) for row in csv.DictReader(handle)]
    # In-process tasks run one after the other, so what the wall time adds to them is start-up
    # (imports, input checks, the model load) and the manifest; a worker's task time
    # includes its own model load instead.
    startup = round(wall - sum(task_s), 2) if not workers else None
    return {"mode": f"--workers {workers}" if workers else "in-process", "workers": workers or 0, "threads": threads,
            "wall_s": round(wall, 2), "tasks": len(task_s), "task_s": round(sum(task_s), 2), "longest_task_s": round(max(task_s), 2),
            "startup_s": startup, "peak_rss_tree_mb": round(peak_total, 1), "peak_rss_largest_process_mb": round(peak_one, 1)}


def timelapse(model: str, frames: int, side: int, tta: bool, wells: int, threads: int) -> dict:
    """The command line on a synthetic time-lapse: in-process and on 1 Dask worker with
    `threads` torch threads, then on 2 workers sharing them."""
    import os
    import shutil
    import tempfile

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    folder = Path(tempfile.mkdtemp(prefix="blastoseg-timelapse-"))
    try:
        start = time.perf_counter()
        source = _timelapse_input(folder, frames, side, wells)
        made = time.perf_counter() - start
        helped = time.perf_counter()
        subprocess.run([sys.executable, "-m", "blastoseg", "--help"], check=True, capture_output=True)
        help_s = time.perf_counter() - helped
        load = os.getloadavg()[0]
        rows = []
        for workers, n in ((None, threads), (1, threads), (2, max(1, threads // 2))):
            row = _timelapse_run(source, folder / f"out-{workers}", model, tta, workers, n, wells)
            row["wall_per_frame_s"] = round(row["wall_s"] / frames, 3)
            row["task_per_frame_s"] = round(row["task_s"] / frames, 3)
            rows.append(row)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"benchmark": "timelapse", "model": model, "frames": frames, "side": side, "tta": tta, "wells": wells,
            "cpu_cores": cores, "load_average_1min_before": round(load, 2), "frames_made_s": round(made, 1),
            "cli_help_s": round(help_s, 3), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("latency", "scale", "timelapse", "child"))
    parser.add_argument("-m", "--model", default=None, help="default: embedseg-nuclei; for timelapse, vqshape (the embryo default)")
    parser.add_argument("--side", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--sides", default="512,1024,2048,4096,8192")
    parser.add_argument("--embryo", action="store_true", help="time a synthetic embryo frame (for the embryo models)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2, the machine's cores; use 1 while another job holds a core: "
                             "two threads on one free core spin and time far worse than one)")
    parser.add_argument("--frames", type=int, default=500, help="timelapse: frames in the time-lapse (default 500)")
    parser.add_argument("--wells", type=int, default=1, help="timelapse: split the frames into this many wells (tasks)")
    parser.add_argument("--no-tta", action="store_true", help="timelapse: segment without TTA")
    args = parser.parse_args()
    if args.what == "timelapse":
        print(json.dumps(timelapse(args.model or "vqshape", args.frames, args.side, not args.no_tta, args.wells, args.threads), indent=1))
        return
    args.model = args.model or "embedseg-nuclei"
    if args.what == "child":
        print(json.dumps(_child(args.model, args.side, args.tta, args.repeats, args.tile, args.threads, args.embryo)))
        return
    if args.what == "latency":
        rows = [_run(args.model, args.side, tta, args.repeats, threads=args.threads, embryo=args.embryo) for tta in (False, True)]
    else:
        sides = [int(s) for s in args.sides.split(",")]
        rows = [_run(args.model, s, args.tta, 3 if s <= 1024 else 1, args.tile, args.threads) for s in sides]
        base = rows[0]["us_per_pixel"]
        for row in rows:
            row["per_pixel_vs_first"] = round(row["us_per_pixel"] / base, 3)
    print(json.dumps({"benchmark": args.what, "model": args.model, "cpu_threads": args.threads, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
