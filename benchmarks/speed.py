"""Latency and memory of segmentation, printed as JSON.

    python -m benchmarks.speed latency -m embedseg-nuclei        # 500x500, with and without TTA
    python -m benchmarks.speed latency -m vqshape --embryo      # the same on a synthetic embryo frame
    python -m benchmarks.speed scale -m embedseg-nuclei          # 512^2 .. 8192^2, tiled, per pixel

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("latency", "scale", "child"))
    parser.add_argument("-m", "--model", default="embedseg-nuclei")
    parser.add_argument("--side", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--sides", default="512,1024,2048,4096,8192")
    parser.add_argument("--embryo", action="store_true", help="time a synthetic embryo frame (for the embryo models)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads (default 2, the machine's cores; use 1 while another job holds a core: "
                             "two threads on one free core spin and time far worse than one)")
    args = parser.parse_args()
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
