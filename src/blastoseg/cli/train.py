"""`blastoseg train`: train or fine-tune a model on a dataset folder or synthetic data."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from blastoseg.cli.common import bar

if TYPE_CHECKING:
    from blastoseg.settings import PipelineSettings
    from blastoseg.training.sources import Pair, SyntheticSource

def _training_source(dataset: str, size: int):  # noqa: ANN202
    """(source, validation pairs, images per epoch) for a folder or 'synthetic:embryo|shapes'."""
    from blastoseg.inference.preprocess import normalize
    from blastoseg.training.sources import SyntheticSource, folder_source

    if dataset.startswith("synthetic:"):
        # Validation frames are drawn once the model is known (`_synthetic_validation`).
        return SyntheticSource(dataset.split(":", 1)[1], size=size), None, 1000
    source = folder_source(dataset)
    n_val = min(20, len(source.pairs) // 10)
    validation = [(normalize(img), inst) for img, inst in source.pairs[:n_val]] if n_val else []
    if n_val:
        source.pairs = source.pairs[n_val:]
    return source, validation, len(source.pairs)


def _synthetic_validation(source: SyntheticSource, settings: PipelineSettings) -> list[Pair]:
    """16 fixed frames drawn as the model's training frames are (a framing model's at twice
    its working size), before `as_model_sees`; seeded apart from the training stream."""
    import numpy as np

    rng = np.random.default_rng(12345)
    return [source.for_model(settings).frame(rng) for _ in range(16)]


def run(args: argparse.Namespace) -> int:
    from blastoseg.checkpoint import fine_tune_start, load
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.train import Budget, TrainOptions, train

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
        model.configure(overrides)
    if init and args.method and model.method.name != args.method:
        raise ValueError(f"{init} is a {model.method.name} model, not {args.method}; drop -m or pick another model")
    if validation is None:
        validation = _synthetic_validation(source, model.pipeline)
    options = TrainOptions(budget, batch=args.batch, lr=args.lr, augmentation=Augmentation(crop=args.crop),
                           validate_every=args.validate_every, device=args.device, ema_decay=args.ema,
                           description=f"{args.dataset}; command: blastoseg {' '.join(sys.argv[1:])}")
    meter = bar(1000, f"train {model.method.name}", "‰")
    best = None
    for event in train(model, source, options, output, validation=validation):
        meter.update(int(event.fraction * 1000) - meter.n)
        best = event.best if event.best is not None else best
        meter.set_postfix(loss=f"{event.losses['total']:.3f}", val_ap50=best, refresh=False)
    meter.close()
    print(f"saved {output} ({model.method.name}, best validation AP50 {best})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    from blastoseg.methods import method_names
    
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
    p.set_defaults(func=run)
