"""CLI commands that run models: `segment` and `train`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from blastoseg.checkpoint import Model
    from blastoseg.training_data import Pair, SyntheticSource


def _bar(total: int, desc: str, unit: str):  # noqa: ANN202 - a tqdm bar
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


def segment_file(
    path: Path, model: Model, out_dir: Path, tta: bool, tile: int | None, device: str, auto_scale: bool = True
) -> tuple[Path, Path, int]:
    """Segment one image file; write `<stem>_amodal.tif` and `<stem>_visible.tif`."""
    from blastoseg import __version__, io
    from blastoseg.predict import segment_frames

    frames = io.as_frames(io.read_image(path), notify=lambda m: print(f"blastoseg: {path.name}: {m}", file=sys.stderr))
    bar = _bar(0, path.name, "pass")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    found = segment_frames(frames, model, tta=tta, tile=tile, device=device, progress=progress, auto_scale=auto_scale)
    bar.close()
    provenance = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256,
                  "source": str(path), "tta": str(tta), "blastoseg_version": __version__}
    stem = path.name.split(".")[0]
    amodal = io.write_amodal(out_dir / f"{stem}_amodal.tif", found if len(found) > 1 else found[0], provenance)
    visible = np.stack([f.visible_labels() for f in found]).astype(np.uint16)
    labels = io.write_labels(out_dir / f"{stem}_visible.tif", visible if len(found) > 1 else visible[0])
    return amodal, labels, sum(len(f) for f in found)


def cmd_segment(args: argparse.Namespace) -> int:
    from blastoseg.checkpoint import default_model_name, load

    paths = [Path(p) for p in args.images]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"no image file at {path}")
    model = load(args.model or default_model_name(), device=args.device)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        amodal, visible, count = segment_file(path, model, out_dir, not args.no_tta, args.tile, args.device, not args.no_rescale)
        print(f"{path.name}: {count} cells -> {amodal.name}, {visible.name}")
    return 0


def _training_source(dataset: str, size: int):  # noqa: ANN202
    """(source, validation pairs, images per epoch) for a folder or 'synthetic:embryo|shapes'."""
    from blastoseg.io import normalize
    from blastoseg.training_data import SyntheticSource, folder_source

    if dataset.startswith("synthetic:"):
        # Validation frames are drawn once the model is known (`_synthetic_validation`).
        return SyntheticSource(dataset.split(":", 1)[1], size=size), None, 1000
    source = folder_source(dataset)
    n_val = min(20, len(source.pairs) // 10)
    validation = [(normalize(img), inst) for img, inst in source.pairs[:n_val]] if n_val else []
    if n_val:
        source.pairs = source.pairs[n_val:]
    return source, validation, len(source.pairs)


def _synthetic_validation(source: SyntheticSource, config: dict) -> list[Pair]:
    """16 fixed frames drawn as the model's training frames are (a framing model's at twice
    its working size), before `as_model_sees`; seeded apart from the training stream."""
    rng = np.random.default_rng(12345)
    return [source.for_model(config).frame(rng) for _ in range(16)]


def cmd_train(args: argparse.Namespace) -> int:
    from blastoseg.checkpoint import fine_tune_start, load, new_model
    from blastoseg.train import Budget, TrainOptions, train
    from blastoseg.training_data import Augmentation

    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file; got {output.name}")
    init = str(output) if args.resume else args.init
    if args.resume and not output.exists():
        raise FileNotFoundError(f"--resume needs an existing checkpoint at {output}")
    source, validation, per_epoch = _training_source(args.dataset, args.crop)
    if args.epochs is not None:
        budget = Budget(steps=max(1, math.ceil(args.epochs * per_epoch * args.crops_per_image / args.batch)))
    elif args.steps is not None:
        budget = Budget(steps=args.steps)
    else:
        budget = Budget(minutes=args.minutes, clock=args.clock)
    import json

    try:
        overrides = json.loads(args.config) if args.config else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--config must be a JSON object, e.g. '{{\"offset_scale\": 128}}' ({error})") from None
    if args.resume:  # the same model, trained on: its own records stay
        model = load(init, device="cpu")
    elif init:
        model = fine_tune_start(init, device="cpu")
    else:
        model = new_model(args.method or "embedseg", overrides)
    if init and overrides:
        model.config.update(overrides)
    if init and args.method and model.method.name != args.method:
        raise ValueError(f"{init} is a {model.method.name} model, not {args.method}; drop -m or pick another model")
    if validation is None:
        validation = _synthetic_validation(source, model.config)
    options = TrainOptions(budget, batch=args.batch, lr=args.lr, augmentation=Augmentation(crop=args.crop),
                           validate_every=args.validate_every, device=args.device, ema_decay=args.ema,
                           description=f"{args.dataset}; command: blastoseg {' '.join(sys.argv[1:])}")
    bar = _bar(1000, f"train {model.method.name}", "‰")
    best = None
    for event in train(model, source, options, output, validation=validation):
        bar.update(int(event.fraction * 1000) - bar.n)
        best = event.best if event.best is not None else best
        bar.set_postfix(loss=f"{event.losses['total']:.3f}", val_ap50=best, refresh=False)
    bar.close()
    print(f"saved {output} ({model.method.name}, best validation AP50 {best})")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from blastoseg.methods import method_names

    p = sub.add_parser("segment", help="segment images; write <stem>_amodal.tif and <stem>_visible.tif")
    p.add_argument("images", nargs="+", metavar="IMAGES", help="TIFF/PNG/JPEG frames or (T, H, W) stacks")
    p.add_argument("-m", "--model", default=None, help="model name (see `blastoseg info`) or .safetensors path; default: the best shipped model")
    p.add_argument("--no-tta", action="store_true", help="skip the 8-fold test-time augmentation (8x faster)")
    p.add_argument("--tile", type=int, default=None, help="tile size in pixels (default: automatic)")
    p.add_argument("--no-rescale", action="store_true",
                   help="never segment a frame again, shrunk, when its objects are far larger than the model's training objects")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("train", help="train or fine-tune a model on a dataset folder or synthetic data")
    p.add_argument("dataset", metavar="DATASET", help="dataset folder (images/ + masks/) or synthetic:embryo / synthetic:shapes")
    p.add_argument("-m", "--method", choices=method_names(), default=None, help="method (default embedseg, or the --init model's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget (default 10)")
    budget.add_argument("--epochs", type=float, default=None, help="passes over the data (an epoch: 8 crops per image; 1000 images for synthetic data)")
    budget.add_argument("--steps", type=int, default=None, help="optimiser steps")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="count --minutes on the wall clock or as the process's CPU time (fair on a shared machine)")
    p.add_argument("--init", default=None, help="fine-tune this model (name or path) instead of starting from scratch")
    p.add_argument("--config", default=None, help="method settings as JSON, e.g. '{\"offset_scale\": 128}'")
    p.add_argument("--resume", action="store_true", help="continue training the checkpoint at -o")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=256, help="training crop side in pixels (default 256)")
    p.add_argument("--crops-per-image", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--validate-every", type=int, default=200, help="steps between validations (default 200)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="validate and save a moving average of the weights, e.g. 0.999 (steadier than the last weights)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True, help="the model file to write (.safetensors)")
    p.set_defaults(func=cmd_train)
