"""ISBI 2014 overlapping cervical cells (../shared/data/isbi2014_cervical_train45), amodal.

    python benchmarks/isbi.py train -m layered --minutes 15 -o runs/layered-isbi.safetensors
    python benchmarks/isbi.py tune -m runs/layered-isbi.safetensors      # on the 4 validation images
    python benchmarks/isbi.py evaluate -m runs/layered-isbi.safetensors
    python benchmarks/isbi.py reference        # perfect visible masks vs the amodal truth

The 45 annotated 512 x 512 images: 01-35 train (the last 4 of them held out for
validation), 36-45 test. Each cell's cytoplasm is one plane of `cyto_masks/NN.tif`, its
whole (amodal) extent. The cells are translucent and the data has no depth order, yet
layered targets need one, so a cell's depth is its area rank, the smaller in front: a
rule the network can learn from the image, unlike the arbitrary order of the planes.
`evaluate` prints JSON: amodal mAP (AP_dsb .5:.95), AP_dsb@0.5/0.75, COCO AP/AP50/AP75,
AJI and the median relative area error of matched cells, with and without TTA.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import tifffile

from blastoseg.instances import Instances

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2014_cervical_train45"
N_TRAIN, N_VAL = 35, 4  # images 1..35 train, of which the last 4 validate; 36..45 test
KEYS = ("mAP", "AP_dsb@0.50", "AP_dsb@0.75", "AP", "AP50", "AP75", "AJI", "AR_none", "AR_partial", "AR_heavy",
        "area_error_median")


def load(indices: range, data: Path = DATA) -> list[tuple[np.ndarray, Instances]]:
    out = []
    for i in indices:
        image = tifffile.imread(data / "images" / f"{i:02d}.tif").astype(np.float32)
        stack = tifffile.imread(data / "cyto_masks" / f"{i:02d}.tif") > 0
        areas = stack.reshape(len(stack), -1).sum(1)
        depth = np.argsort(np.argsort(areas, kind="stable"), kind="stable")  # smaller cells in front
        out.append((image, Instances.from_mask_stack(stack, depth=depth)))
    return out


def _scores(found: list[Instances], truth: list[Instances]) -> dict:
    from blastoseg.metrics import evaluate

    result = evaluate(found, truth)
    return {k: (None if result[k] != result[k] else round(float(result[k]), 4)) for k in KEYS}


def cmd_train(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import fine_tune_start
    from blastoseg.inference.preprocess import normalize
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import Budget, TrainOptions, train

    items = load(range(1, N_TRAIN + 1))
    source = PairSource(items[: N_TRAIN - N_VAL])
    validation = [(normalize(image), truth) for image, truth in items[N_TRAIN - N_VAL :]]
    config = json.loads(args.config)
    model = fine_tune_start(args.init, device="cpu") if args.init else new_model(args.method, config)
    options = TrainOptions(
        Budget(minutes=args.minutes, clock=args.clock), batch=args.batch, lr=args.lr,
        augmentation=Augmentation(crop=args.crop), validate_every=args.validate_every, device=args.device,
        description=f"ISBI 2014 cervical cells, images 01-{N_TRAIN - N_VAL} (validation {N_TRAIN - N_VAL + 1}-{N_TRAIN}); "
        f"command: python benchmarks/isbi.py {' '.join(sys.argv[1:])}",
    )
    for event in train(model, source, options, args.output, validation=validation):
        if event.step % 50 == 0 or event.validation is not None:
            print(json.dumps(event.as_dict()), flush=True)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load as load_model
    from blastoseg.inference.predict import segment

    items = load(range(N_TRAIN + 1, 46))
    truth = [t for _, t in items]
    model = load_model(args.model, device=args.device)
    report: dict = {"model": str(args.model), "method": model.method.name, "n_images": len(items),
                    "n_cells": int(sum(len(t) for t in truth)), "training": model.metadata.get("training")}
    for tta in (False, True):
        start = time.perf_counter()
        found = [segment(image, model, tta=tta, device=args.device) for image, _ in items]
        report["tta" if tta else "no_tta"] = {**_scores(found, truth),
                                              "seconds_per_image": round((time.perf_counter() - start) / len(items), 3)}
    print(json.dumps(report, indent=1))


def cmd_tune(args: argparse.Namespace) -> None:
    """The method's post-processing settings, chosen on the 4 validation images (never the test ones)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tuning import tune_thresholds

    items = load(range(N_TRAIN - N_VAL + 1, N_TRAIN + 1))
    tune_thresholds(args.model, items, True, args.device, f"ISBI 2014 images {N_TRAIN - N_VAL + 1}-{N_TRAIN} (validation)")


def cmd_reference(args: argparse.Namespace) -> None:
    truth = [t for _, t in load(range(N_TRAIN + 1, 46))]
    print(json.dumps({"reference": "perfect visible masks vs amodal truth", "n_images": len(truth),
                      "vs_amodal": _scores([t.visible() for t in truth], truth)}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("-m", "--method", default="layered")
    t.add_argument("--minutes", type=float, default=15)
    t.add_argument("--clock", choices=("wall", "cpu"), default="cpu", help="budget in wall-clock or process CPU minutes")
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
