"""DSB2018 greyscale nuclei (the fixed split in dsb2018/split.json, see benchmarks.datasets).

    python -m benchmarks.dsb train --minutes 30 -o models/embedseg-nuclei.safetensors
    python -m benchmarks.dsb tune -m models/embedseg-nuclei.safetensors      # thresholds, on held-out train images
    python -m benchmarks.dsb evaluate -m models/embedseg-nuclei.safetensors
    python -m benchmarks.dsb sizes -m MODEL    # object sizes, for models trained before training recorded them

`evaluate` prints JSON: AP_dsb at IoU 0.5..0.9 with and without TTA, as the mean over
images (as EmbedSeg reports it) and pooled over all objects, plus Dice2, AJI, F1 and PQ.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from benchmarks import datasets, runner
from benchmarks.scoring import dsb_scores, print_report

if TYPE_CHECKING:
    from blastoseg.training.train import TrainOptions

EMBEDSEG_CONFIG = {"offset_scale": 64.0, "sigma_scale": 8.0, "min_size": 8, "invert_bright_background": True}


def train_options(args: argparse.Namespace, n_train: int, n_held: int, recipe: str) -> TrainOptions:
    """The `TrainOptions` of the shared DSB training flags."""
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.train import TrainOptions

    return TrainOptions(
        runner.budget(args), batch=args.batch, lr=args.lr, augmentation=Augmentation(crop=args.crop),
        validate_every=args.validate_every, device=args.device, ema_decay=args.ema,
        description=f"DSB2018 greyscale train split ({n_train} train / {n_held} held out); command: {runner.recipe_command(recipe)}",
    )


def cmd_train(args: argparse.Namespace) -> None:
    from blastoseg.inference.preprocess import normalize
    from blastoseg.training.sources import PairSource

    pairs, held = datasets.dsb_train_split()
    # Validation on 256x256 corner crops keeps it to a few seconds however large the image.
    val = [(normalize(image)[:256, :256], truth.cropped(0, 0, *image[:256, :256].shape)) for _, image, truth in held[: args.val_images]]
    source = PairSource(pairs)
    model = runner.starting_model("embedseg", EMBEDSEG_CONFIG, args.init)
    runner.run_training(model, source, train_options(args, len(source.pairs), len(held), "dsb"), args.output, validation=val)


def cmd_tune(args: argparse.Namespace) -> None:
    """Pick the seed and foreground thresholds on the held-out training images (never the test split)."""
    items = [(image, truth) for _, image, truth in datasets.dsb_train_split()[1]]
    runner.tune_and_save(args.model, items, args.tta, args.device, "DSB2018 train split, the 15% held out from training")


def cmd_sizes(args: argparse.Namespace) -> None:
    """Record the training split's object sizes in a model trained before `train` did so
    itself (`object_size`: frames of far larger nuclei are then segmented again, shrunk)."""
    from blastoseg import checkpoint
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import training_sizes

    model = checkpoint.load(args.model, device="cpu")
    fresh = model.pipeline.replaced(object_diameters=None)
    model.pipeline = training_sizes(fresh, PairSource(datasets.dsb_train_split()[0]).for_model(fresh))
    checkpoint.save(model, model.path)
    print(json.dumps({"model": str(args.model), "object_diameters": model.pipeline.object_diameters}))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load
    from blastoseg.inference.predict import segment

    model = load(args.model, device=args.device)
    items = datasets.dsb("test")
    report: dict = {"model": str(args.model), "n_images": len(items), "n_objects": int(sum(len(g) for _, _, g in items))}
    for tta in (False, True):
        report["tta" if tta else "no_tta"] = dsb_scores(items, lambda image, tta=tta: segment(image, model, tta=tta, device=args.device))
    print_report(report)


def add_train_arguments(t: argparse.ArgumentParser, output: str) -> argparse.ArgumentParser:
    """The training options every DSB benchmark shares."""
    runner.add_budget_arguments(t, minutes=30)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--crop", type=int, default=128)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--validate-every", type=int, default=200)
    t.add_argument("--val-images", type=int, default=30)
    t.add_argument("--init", default=None)
    t.add_argument("--ema", type=float, default=None, metavar="DECAY", help="validate and save a moving average of the weights")
    t.add_argument("--device", default="auto")
    t.add_argument("-o", "--output", default=output)
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_arguments(sub.add_parser("train"), "models/embedseg-nuclei.safetensors")
    e = sub.add_parser("evaluate")
    e.add_argument("-m", "--model", default="models/embedseg-nuclei.safetensors")
    e.add_argument("--device", default="auto")
    u = sub.add_parser("tune")
    u.add_argument("-m", "--model", default="models/embedseg-nuclei.safetensors")
    u.add_argument("--tta", action="store_true")
    u.add_argument("--device", default="auto")
    z = sub.add_parser("sizes", help="record the training split's object sizes in a model")
    z.add_argument("-m", "--model", default="models/embedseg-nuclei.safetensors")
    args = parser.parse_args()
    {"train": cmd_train, "evaluate": cmd_evaluate, "tune": cmd_tune, "sizes": cmd_sizes}[args.command](args)


if __name__ == "__main__":
    main()
