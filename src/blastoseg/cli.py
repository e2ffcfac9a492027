"""The `blastoseg` command line.

Heavy modules (torch, skimage, the synth and metrics code) are imported inside the
command functions so that `blastoseg --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEMO_SEED = 0
DEMO_SIZE = 256


def _progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "image") -> Iterable[T]:
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, unit=unit, dynamic_ncols=True)


def _warn(message: str) -> None:
    print(f"blastoseg: warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------- synth
def cmd_synth(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be at least 1; got {args.n}")
    if args.size < 32:
        raise ValueError(f"--size must be at least 32 pixels; got {args.size}")
    import numpy as np

    from blastoseg import data, synth

    out = Path(args.out)
    rng = np.random.default_rng(args.seed)
    for i in _progress(range(args.n), desc=f"synth {args.kind}"):
        if args.kind == "embryo":
            sample = synth.synth_embryo((args.size, args.size), seed=rng)
        else:
            sample = synth.synth_shapes(n_per_class=6, size=args.size, seed=rng)
        data.write_item(out, f"{args.kind}_{i:04d}", sample.image, sample.instances, visible=args.visible)
    kind = "visible label images" if args.visible else "amodal layered labels"
    print(f"wrote {args.n} images with {kind} to {out}")
    return 0


# ---------------------------------------------------------------------- evaluate
def cmd_evaluate(args: argparse.Namespace) -> int:
    from blastoseg import data, metrics
    from blastoseg.instances import Instances

    gts = data.read_instances_dir(args.gt_dir, progress=lambda it: _progress(it, desc="read ground truth"))
    preds = data.read_instances_dir(args.pred_dir, progress=lambda it: _progress(it, desc="read predictions"))
    missing = [name for name in gts if name not in preds]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        _warn(f"{len(missing)} ground-truth images have no prediction in {args.pred_dir} and count as empty: {shown}")
    extra = [name for name in preds if name not in gts]
    if extra:
        _warn(f"{len(extra)} predictions have no ground truth and are ignored: {', '.join(extra[:5])}")
    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold is a score between 0 and 1; got {args.threshold}")
    names = list(gts)
    pred_list = [preds.get(name, Instances.empty(gts[name].shape)) for name in names]
    for name, pred in zip(names, pred_list):
        if pred.shape != gts[name].shape:
            raise ValueError(f"prediction {name!r} is {pred.shape} but its ground truth is {gts[name].shape}")
    pred_list = [pred[pred.scores >= args.threshold] for pred in pred_list]
    result = metrics.evaluate(pred_list, [gts[name] for name in names])
    print(json.dumps({k: _jsonable(v) for k, v in result.items()}, indent=2))
    return 0


def _jsonable(value: Any) -> Any:
    """numpy scalars (and NaN from empty sets) as plain JSON values."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


# ---------------------------------------------------------------------- info
def cmd_info(args: argparse.Namespace) -> int:
    import platform

    from blastoseg import __version__

    print(f"blastoseg {__version__}")
    print(f"python    {platform.python_version()} ({sys.executable})")
    try:
        import torch
    except ImportError:
        print("torch     not installed")
    else:
        print(f"torch     {torch.__version__}")
        cuda = torch.cuda.is_available()
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ""
        print(f"CUDA      {'yes: ' + gpus if cuda else 'no'}")
        mps = getattr(torch.backends, "mps", None)
        print(f"MPS       {'yes' if mps is not None and mps.is_available() else 'no'}")
    from blastoseg.checkpoint import list_models, read_metadata

    models = list_models()
    print(f"models    {len(models)} found")
    for name, path in models.items():
        try:
            method = read_metadata(path).get("method", "?")
        except ValueError as error:
            method = f"unreadable: {error}"
        print(f"  {name:<20} {method:<10} {path}")
    return 0


# ---------------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    """Segment the bundled sample embryo with the default model; write layers, CSV and scores."""
    import numpy as np

    from blastoseg import io, metrics, synth
    from blastoseg.checkpoint import default_model_name, load
    from blastoseg.cli_measure import measure_files
    from blastoseg.cli_models import segment_file
    from blastoseg.measure import write_csv

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    sample = synth.synth_embryo((DEMO_SIZE, DEMO_SIZE), seed=np.random.default_rng(DEMO_SEED))
    image = io.write_image(out / "sample_embryo.tif", sample.image.astype(np.float32))
    truth = {"method": "ground truth (synthetic)", "seed": str(DEMO_SEED)}
    io.write_amodal(out / "sample_embryo_gt_amodal.tif", sample.instances, truth)
    io.write_labels(out / "sample_embryo_gt_visible.tif", sample.instances.visible_labels())
    model = load(args.model or default_model_name(), device=args.device)
    amodal, visible, count = segment_file(image, model, out, tta=True, tile=None, device=args.device)
    cells_csv, frames_csv = write_csv(measure_files([amodal], 1.0, None), out / "sample_embryo.csv", on_exists="overwrite")
    found = io.read_amodal(amodal)[0][0]
    reference = sample.instances if model.method.amodal else sample.instances.visible()
    scores = metrics.evaluate([found], [reference])
    print(f"sample embryo: {len(sample.instances)} blastomeres in the ground truth, {count} found by {model.name}")
    print(f"  mAP {scores['mAP']:.3f}, AP_dsb@0.5 {scores['AP_dsb@0.50']:.3f} against the "
          f"{'amodal' if model.method.amodal else 'visible'} ground truth")
    for what, path in [("image", image), ("amodal layers", amodal), ("visible labels", visible),
                       ("per-cell CSV", cells_csv), ("per-frame CSV", frames_csv),
                       ("ground truth", out / "sample_embryo_gt_amodal.tif")]:
        print(f"  {what:<15} {path}")
    return 0


# ---------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from blastoseg import __version__

    parser = argparse.ArgumentParser(prog="blastoseg", description="Amodal instance segmentation of embryo blastomeres.")
    parser.add_argument("--version", action="version", version=f"blastoseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic dataset folder (images/ + masks/)")
    p.add_argument("out", metavar="OUT", help="dataset folder to create or add to")
    p.add_argument("--kind", choices=("embryo", "shapes"), default="embryo", help="embryo-like cells or toy shapes")
    p.add_argument("--n", type=int, default=10, help="number of images (default 10)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--visible", action="store_true", help="write visible (modal) label images instead of amodal layers")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("evaluate", help="score predictions against ground truth, print JSON")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="dataset folder or folder of <name>.tif / <name>_amodal.tif")
    p.add_argument("gt_dir", metavar="GT_DIR", help="dataset folder or folder of ground-truth label TIFFs")
    p.add_argument(
        "--threshold", type=float, default=0.0, metavar="SCORE", help="ignore predictions scoring below SCORE (default 0: keep all)"
    )
    p.set_defaults(func=cmd_evaluate)

    from blastoseg.cli_measure import add_parser as add_measure
    from blastoseg.cli_models import add_parsers

    add_parsers(sub)
    add_measure(sub)

    p = sub.add_parser("info", help="show versions, devices and installed models")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="segment the bundled sample embryo; write its layers, CSV and scores")
    p.add_argument("-o", "--output", default="demo_output", help="output folder (default demo_output)")
    p.add_argument("-m", "--model", default=None, help="model name or path (default: the best shipped model)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 for bad input, with a one-line message)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        print(f"blastoseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("blastoseg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
