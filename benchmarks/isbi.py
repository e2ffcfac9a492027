"""ISBI 2014 overlapping cervical cells (isbi2014_cervical_train45, see benchmarks.datasets), amodal.

    python -m benchmarks.isbi train -m layered --minutes 15 -o runs/layered-isbi.safetensors
    python -m benchmarks.isbi tune -m runs/layered-isbi.safetensors      # on the 4 validation images
    python -m benchmarks.isbi evaluate -m runs/layered-isbi.safetensors
    python -m benchmarks.isbi reference        # perfect visible masks vs the amodal truth

The 45 annotated 512 x 512 images: 01-35 train (the last 4 of them held out for
validation), 36-45 test. Each cell's cytoplasm is one plane of `cyto_masks/NN.tif`, its
whole (amodal) extent; a cell's depth is its area rank, the smaller in front.
`evaluate` prints JSON: amodal mAP (AP_dsb .5:.95), AP_dsb@0.5/0.75, COCO AP/AP50/AP75,
AJI and the median relative area error of matched cells, with and without TTA.
"""

from __future__ import annotations

import argparse
import json

from benchmarks import datasets, runner
from benchmarks.scoring import print_report, scores, segment_timed

KEYS = ("mAP", "AP_dsb@0.50", "AP_dsb@0.75", "AP", "AP50", "AP75", "AJI", "AR_none", "AR_partial", "AR_heavy",
        "area_error_median")
TRAIN, VALIDATION = datasets.ISBI_PARTS["train"], datasets.ISBI_PARTS["validation"]


def pairs(part: str) -> list[datasets.Pair]:
    """(image, truth) pairs of one part of the ISBI images."""
    return [(image, truth) for _, image, truth in datasets.isbi(part)]


def cmd_train(args: argparse.Namespace) -> None:
    from blastoseg.inference.preprocess import normalize
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import TrainOptions

    source = PairSource(pairs("train"))
    validation = [(normalize(image), truth) for image, truth in pairs("validation")]
    model = runner.starting_model(args.method, json.loads(args.config), args.init)
    options = TrainOptions(
        runner.budget(args), batch=args.batch, lr=args.lr, augmentation=Augmentation(crop=args.crop),
        validate_every=args.validate_every, device=args.device,
        description=f"ISBI 2014 cervical cells, images {TRAIN[0]:02d}-{TRAIN[-1]} (validation {VALIDATION[0]}-{VALIDATION[-1]}); "
        f"command: {runner.recipe_command('isbi')}",
    )
    runner.run_training(model, source, options, args.output, validation=validation, every=50)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load

    items = pairs("test")
    truth = [t for _, t in items]
    model = load(args.model, device=args.device)
    report: dict = {"model": str(args.model), "method": model.method.name, "n_images": len(items),
                    "n_cells": int(sum(len(t) for t in truth)), "training": model.metadata.get("training")}
    for tta in (False, True):
        found, seconds = segment_timed(model, [image for image, _ in items], tta, args.device)
        report["tta" if tta else "no_tta"] = {**scores(found, truth, KEYS), "seconds_per_image": seconds}
    print_report(report)


def cmd_tune(args: argparse.Namespace) -> None:
    """The method's post-processing settings, chosen on the 4 validation images (never the test ones)."""
    runner.tune_and_save(args.model, pairs("validation"), True, args.device,
                         f"ISBI 2014 images {VALIDATION[0]}-{VALIDATION[-1]} (validation)")


def cmd_reference(args: argparse.Namespace) -> None:
    truth = [t for _, t in pairs("test")]
    print_report({"reference": "perfect visible masks vs amodal truth", "n_images": len(truth),
                  "vs_amodal": scores([t.visible() for t in truth], truth, KEYS)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("-m", "--method", default="layered")
    runner.add_budget_arguments(t, minutes=15)
    t.add_argument("--config", default='{"working_size": 256, "min_size": 64, "tile_overlap": 128}',
                   help="method settings as JSON; the default works on frames shrunk to 256 px")
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--crop", type=int, default=256, help="crops of the 512 px images (the scale augmentation applies)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--validate-every", type=int, default=200)
    t.add_argument("--init", default=None)
    t.add_argument("--device", default="auto")
    t.add_argument("-o", "--output", default="runs/layered-isbi.safetensors")
    e = sub.add_parser("evaluate")
    e.add_argument("-m", "--model", default="runs/layered-isbi.safetensors")
    e.add_argument("--device", default="auto")
    u = sub.add_parser("tune")
    u.add_argument("-m", "--model", default="runs/layered-isbi.safetensors")
    u.add_argument("--device", default="auto")
    sub.add_parser("reference")
    args = parser.parse_args()
    {"train": cmd_train, "evaluate": cmd_evaluate, "tune": cmd_tune, "reference": cmd_reference}[args.command](args)


if __name__ == "__main__":
    main()
