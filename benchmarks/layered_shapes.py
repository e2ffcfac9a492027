"""Seed paper 002's shapes protocol for the `layered` method (Liu et al., Tables 1 and 2).

    python -m benchmarks.layered_shapes --tta          # the committed model, benchmarks/models/layered-shapes.safetensors
    python -m benchmarks.layered_shapes --minutes 30 --model runs/shapes.safetensors
    python -m benchmarks.layered_shapes --minutes 0 --tune --tta --model runs/shapes.safetensors

With --minutes > 0, trains a layered model on the endless seed-002 shapes stream
(`SyntheticSource("shapes")`: 3 classes, 6 instances per class, 256 x 256) and saves it to
--model; then evaluates --model on --n-test fixed images `synth_shapes(seed=TEST_SEED + i)`.
Prints JSON: COCO AP, AP50, AP75, AR100 and AR_none / AR_partial / AR_heavy (recall at IoU
0.5 by occlusion rate) on amodal masks, and the ground-truth-layers upper bound for L = 2,
3, 4: every GT instance clipped to the pixels where it is among the L front-most, scored
against the full amodal GT (the paper's Table 2). Scores are class-agnostic: the method
has no class head, so all instances are one class (the paper averages over 3 classes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks import datasets, runner
from benchmarks.scoring import COCO_KEYS, print_report, scores, segment_timed
from blastoseg.instances import Instances

TEST_SEED = 1_000_000  # test image i is synth_shapes(seed=TEST_SEED + i)
VALIDATION_SEED = 2_000_000  # the few images watched during training
TUNE_SEED, N_TUNE = VALIDATION_SEED + 1000, 50  # threshold tuning, disjoint from both


def upper_bound(gts: list[Instances], layers: tuple[int, ...] = (2, 3, 4)) -> dict[str, dict]:
    from blastoseg.methods.layered.method import clip_to_layers

    return {f"L{n}": scores([clip_to_layers(g, n) for g in gts], gts, COCO_KEYS) for n in layers}


def train_model(args: argparse.Namespace) -> None:
    from blastoseg.inference.preprocess import normalize
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import SyntheticSource
    from blastoseg.training.train import TrainOptions

    validation = [(normalize(s.image), s.instances) for s in datasets.shapes(args.val_images, VALIDATION_SEED)]
    config = {"layers": args.layers, "working_size": args.working_size, "tile_overlap": args.working_size // 4}
    model = runner.starting_model("layered", config, args.init)
    # The protocol's shapes have fixed sizes, so no scale augmentation; crops are whole
    # images, which train() shrinks to the working size.
    augmentation = Augmentation(crop=model.pipeline.working_size or 256, scale_range=(1.0, 1.0))
    options = TrainOptions(
        runner.budget(args), batch=args.batch, lr=args.lr, augmentation=augmentation,
        validate_every=args.validate_every, device=args.device,
        description=f"seed 002 shapes ({datasets.SHAPES_PER_CLASS} per class, 256 px); command: {runner.recipe_command('layered_shapes')}",
    )
    runner.run_training(model, SyntheticSource("shapes", size=256), options, args.model, validation=validation)


def tune(args: argparse.Namespace) -> None:
    """Post-processing thresholds on 50 validation images (seeds disjoint from the test set)."""
    samples = datasets.shapes(N_TUNE, TUNE_SEED)
    runner.tune_and_save(args.model, [(s.image, s.instances) for s in samples], False, args.device,
                         f"{N_TUNE} shapes images, seeds {TUNE_SEED}..{TUNE_SEED + N_TUNE - 1}")


def evaluate(args: argparse.Namespace) -> dict:
    samples = datasets.shapes(args.n_test, TEST_SEED)
    gts = [s.instances for s in samples]
    report: dict = {
        "protocol": {"n_test": args.n_test, "per_class": datasets.SHAPES_PER_CLASS, "classes": 3, "size": 256,
                     "test_seeds": f"{TEST_SEED}..{TEST_SEED + args.n_test - 1}", "class_agnostic": True,
                     "n_gt": int(sum(len(g) for g in gts))},
    }
    if Path(args.model).exists():
        from blastoseg.checkpoint import load

        model = load(args.model, device=args.device)
        preds, seconds = segment_timed(model, [s.image for s in samples], args.tta, args.device)
        report["model"] = {"path": str(args.model), "sha256": model.sha256, "config": model.config,
                           "pipeline": model.pipeline.as_dict(), "training": model.metadata.get("training")}
        report["layered"] = {**scores(preds, gts, COCO_KEYS), "tta": args.tta, "n_pred": int(sum(len(p) for p in preds)),
                             "seconds_per_image": seconds}
    else:
        report["layered"] = f"no model at {args.model}: upper bound only"
    report["gt_layers_upper_bound"] = upper_bound(gts)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    runner.add_budget_arguments(parser, minutes=0.0, help="training budget; 0 evaluates --model as it is")
    parser.add_argument("--n-test", type=int, default=1000, help="fixed test images (default 1000, as the paper)")
    parser.add_argument("--model", default="benchmarks/models/layered-shapes.safetensors", help="checkpoint to write and/or evaluate")
    parser.add_argument("--layers", type=int, default=3, help="layers of a new model (default 3)")
    parser.add_argument("--working-size", type=int, default=128,
                        help="side the network sees (default 128: 4x cheaper than 256, still 2x finer than the paper's 64 x 64 output)")
    parser.add_argument("--init", default=None, help="start training from this checkpoint")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--validate-every", type=int, default=200)
    parser.add_argument("--val-images", type=int, default=16)
    parser.add_argument("--tta", action="store_true", help="evaluate with 8-fold TTA (8x slower)")
    parser.add_argument("--tune", action="store_true", help="after training, choose the post-processing thresholds on 50 validation images")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.minutes > 0 or args.steps:
        train_model(args)
    if args.tune:
        tune(args)
    print_report(evaluate(args))


if __name__ == "__main__":
    main()
