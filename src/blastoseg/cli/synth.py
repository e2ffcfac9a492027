"""`blastoseg synth`: a synthetic dataset folder (images/ + masks/)."""

from __future__ import annotations

import argparse
from pathlib import Path

from blastoseg.cli.common import progress


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be at least 1; got {args.n}")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 pixels; got {args.size}")
    import numpy as np

    from blastoseg import synth
    from blastoseg.training import datasets

    out = Path(args.out)
    rng = np.random.default_rng(args.seed)
    for i in progress(range(args.n), desc=f"synth {args.kind}"):
        if args.kind == "embryo":
            sample = synth.synth_embryo((args.size, args.size), seed=rng, acquisition=args.look == "acquired")
        else:
            sample = synth.synth_shapes(n_per_class=6, size=args.size, seed=rng)
        datasets.write_item(out, f"{args.kind}_{i:04d}", sample.image, sample.instances, visible=args.visible)
    kind = "visible label images" if args.visible else "amodal layered labels"
    print(f"wrote {args.n} images with {kind} to {out}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="write a synthetic dataset folder (images/ + masks/)")
    p.add_argument("out", metavar="OUT", help="dataset folder to create or add to")
    p.add_argument("--kind", choices=("embryo", "shapes"), default="embryo", help="embryo-like cells or toy shapes")
    p.add_argument("--n", type=int, default=10, help="number of images (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--look", choices=("acquired", "clean"), default="acquired",
                   help="embryos as instruments acquire them (well views, cut embryos, text, debris, JPEG; "
                        "the default) or clean centred crops")
    p.add_argument("--visible", action="store_true", help="write visible (modal) label images instead of amodal layers")
    p.set_defaults(func=run)
