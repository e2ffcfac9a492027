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
    n_val = min(20, len(source.pairs) // 10)  # a fine-tune holds frames out by its own plan
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


def _check_output(args: argparse.Namespace) -> Path:
    """The checkpoint to write: a .safetensors file name, and an existing one only with
    --resume (continue it) or --overwrite (replace it)."""
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise ValueError(f"the output must be a .safetensors file; got {output.name}")
    if output.is_dir():
        raise IsADirectoryError(f"-o {output} is a folder; give the model file to write, e.g. {output / 'model.safetensors'}")
    if args.resume:
        if not output.is_file():
            raise FileNotFoundError(f"--resume needs an existing checkpoint at {output}")
        if args.init:
            raise ValueError("--resume continues the model at -o; drop --init, or write the fine-tuned model to a new -o")
    elif output.exists() and not args.overwrite:
        raise FileExistsError(f"{output} exists; pass --resume to continue training it, --overwrite to replace it, "
                              "or choose another -o")
    return output


def _overrides(text: str | None) -> dict:
    try:
        overrides = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise ValueError(f"--config must be a JSON object, e.g. '{{\"offset_scale\": 128}}' ({error})") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--config must be a JSON object of settings, e.g. '{{\"offset_scale\": 128}}'; got {text}")
    return overrides


def _budget(args: argparse.Namespace, per_epoch: int):  # noqa: ANN202
    from blastoseg.training.train import Budget

    if args.epochs is not None:
        if not args.epochs > 0 or not math.isfinite(args.epochs):
            raise ValueError(f"--epochs must be a positive number; got {args.epochs}")
        return Budget(steps=max(1, math.ceil(args.epochs * per_epoch * args.crops_per_image / args.batch)))
    if args.steps is not None:
        return Budget(steps=args.steps)
    return Budget(minutes=args.minutes, clock=args.clock)


def run(args: argparse.Namespace) -> int:
    from blastoseg.checkpoint import fine_tune_start, load
    from blastoseg.device import resolve_device
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.train import TrainOptions, train

    output = _check_output(args)
    overrides = _overrides(args.config)
    resolve_device(args.device)  # an unusable device is refused before the data are read
    init = str(output) if args.resume else args.init
    # --crop 0 must reach TrainOptions' check, not fall back to the default as a falsy value would.
    source, validation, per_epoch = _training_source(args.dataset, 256 if args.crop is None else args.crop)
    budget = _budget(args, per_epoch)
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
    lr = args.lr if args.lr is not None else (model.method.finetune_lr if init and not args.resume else 1e-3)
    crop = args.crop if args.crop is not None else (model.pipeline.working_size or 256)  # whole working frames where they are small
    # Checked before validation frames are drawn or a fine-tune is planned.
    options = TrainOptions(budget, batch=args.batch, lr=lr, augmentation=Augmentation(crop=crop),
                           validate_every=args.validate_every, device=args.device, ema_decay=args.ema, keep_better=args.resume,
                           description=f"{args.dataset}; command: blastoseg {' '.join(sys.argv[1:])}")
    if init and not args.resume and not args.dataset.startswith("synthetic:"):
        from blastoseg.training.finetune import plan

        fine = plan(model, source.pairs + validation, replay=args.replay)  # the plan holds frames out itself
        source, validation = fine.source, fine.validation
        print(f"fine-tuning {model.name} on {fine.describe()}")
    elif validation is None:
        validation = _synthetic_validation(source, model.pipeline)
    meter = bar(100, f"train {model.method.name}", "%", rate=False)
    last, saved = None, None
    try:
        for event in train(model, source, options, output, validation=validation):
            meter.update(int(event.fraction * 100) - meter.n)
            last, saved = event, event.saved or saved
            shown = {"step": event.step, "left": f"{event.eta / 60:.1f} min", "loss": f"{event.losses['total']:.3f}"}
            if event.best is not None:
                shown["val_AP50"] = f"{event.best:.3f}"
            meter.set_postfix(shown, refresh=False)
    finally:
        meter.close()
    if saved is None:  # a resume that never beat its starting weights
        best = getattr(last, "best", None)
        print(f"kept {output} as it was: no step validated better than its starting weights"
              + (f" (validation AP50 {best:.3f})" if best is not None else ""))
    else:
        print(summary(output, model.method.name, last))
    return 0


def summary(output: Path, method: str, last: object) -> str:
    """What was saved, its validation score and, for a fine-tune, how it compares with its parent."""
    best, parent = getattr(last, "best", None), getattr(last, "parent", None)
    text = f"saved {output} ({method}" + (f", best validation AP50 {best:.3f})" if best is not None else ", no validation frames)")
    if parent is not None and best is not None:
        verdict = "better than" if best > parent else "NOT better than"
        text += f"; {verdict} its parent ({parent:.3f} on the same validation frames)"
        if best <= parent:
            text += ": keep using the parent"
    return text


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
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue training the checkpoint at -o; it is replaced only by a model that validates better")
    again.add_argument("--overwrite", action="store_true", help="replace an existing -o with a new model")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=None, help="training crop side in pixels (default: the model's working size, else 256)")
    p.add_argument("--crops-per-image", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 1e-3, or the method's fine-tuning rate with --init)")
    p.add_argument("--replay", type=float, default=0.5,
                   help="fine-tuning on a folder: share of crops from the parent's kind of data, "
                        "synthetic embryos (default 0.5; 0 for none)")
    p.add_argument("--validate-every", type=int, default=200, help="steps between validations (default 200)")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help="validate and save a moving average of the weights, e.g. 0.999 (steadier than the last weights)")
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True, help="the model file to write (.safetensors)")
    p.set_defaults(func=run)
