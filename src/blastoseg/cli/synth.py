"""`blastoseg synth`: a synthetic dataset folder (images/ + masks/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from blastoseg.cli.common import progress


def _refuse_taken_names(out: Path, names: list[str]) -> None:
    """Never write over a dataset's images or masks: an earlier run's files (or a user's)."""
    taken = [f"{sub}/{name}.tif" for name in names for sub in ("images", "masks") if (out / sub / f"{name}.tif").exists()]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise FileExistsError(f"{out} already holds {taken[0]}{more}; write to another folder, or move those files away first")


def run(args: argparse.Namespace) -> int:
    from blastoseg import limits

    if args.n < 1:
        raise ValueError(f"--n must be at least 1; got {args.n}")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 pixels; got {args.size}")
    limits.check_pixels((args.size, args.size), f"--size {args.size}", remedy="choose a smaller --size")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file; give the dataset folder to create or add to")
    names = [f"{args.kind}_{i:04d}" for i in range(args.n)]
    _refuse_taken_names(out, names)
    import numpy as np

    from blastoseg import synth
    from blastoseg.training import datasets

    rng = np.random.default_rng(args.seed)
    for name in progress(names, desc=f"synth {args.kind}"):
        if args.kind == "embryo":
            sample = synth.synth_embryo((args.size, args.size), seed=rng, acquisition=args.look == "acquired")
        else:
            sample = synth.synth_shapes(n_per_class=6, size=args.size, seed=rng)
        datasets.write_item(out, name, sample.image, sample.instances, visible=args.visible)
    kind = "visible label images" if args.visible else "amodal layered labels"
    print(f"wrote {args.n} images with {kind} to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset folder (images/ + masks/)")
    p.add_argument("out", metavar="OUT", help="dataset folder to create, or to add to under new names (existing files are never replaced)")
    p.add_argument("--kind", choices=("embryo", "shapes"), default="embryo", help="embryo-like cells or toy shapes")
    p.add_argument("--n", type=int, default=10, help="number of images (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--look", choices=("acquired", "clean"), default="acquired",
                   help="embryos as instruments acquire them (well views, cut embryos, text, debris, JPEG; "
                        "the default) or clean centred crops")
    p.add_argument("--visible", action="store_true", help="write visible (modal) label images instead of amodal layers")
    p.set_defaults(func=run)
