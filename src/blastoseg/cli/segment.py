"""`blastoseg segment`: image files in, amodal and visible label files out."""

from __future__ import annotations

import argparse
from pathlib import Path

from blastoseg.cli.common import pass_progress


def run(args: argparse.Namespace) -> int:
    from blastoseg.catalogue import default_model_name
    from blastoseg.checkpoint import load
    from blastoseg.files import segment_file

    paths = [Path(p) for p in args.images]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
    model = load(args.model or default_model_name(), device=args.device)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        with pass_progress(path.name) as progress:
            amodal, visible, count = segment_file(path, model, out_dir, not args.no_tta, args.tile, args.device, not args.no_rescale, progress)
        print(f"{path.name}: {count} cells -> {amodal.name}, {visible.name}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment images; write <stem>_amodal.tif and <stem>_visible.tif")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="TIFF/PNG/JPEG frames or (T, H, W) stacks")
    p.add_argument("-m", "--model", default=None, help="model name (see `blastoseg info`) or .safetensors path; default: the best shipped model")
    p.add_argument("--no-tta", action="store_true", help="skip the 8-fold test-time augmentation (8x faster)")
    p.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: automatic)")
    p.add_argument("--no-rescale", action="store_true",
                   help="never segment a frame again, shrunk, when its objects are far larger than the model's training objects")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=run)
