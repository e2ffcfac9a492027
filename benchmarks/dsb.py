"""DSB2018 greyscale nuclei (the fixed split in ../shared/data/dsb2018/split.json).

    python benchmarks/dsb.py train --minutes 30 -o models/embedseg-nuclei.safetensors
    python benchmarks/dsb.py tune -m models/embedseg-nuclei.safetensors      # thresholds, on held-out train images
    python benchmarks/dsb.py evaluate -m models/embedseg-nuclei.safetensors
    python benchmarks/dsb.py sizes -m MODEL    # object sizes, for models trained before training recorded them

`evaluate` prints JSON: AP_dsb at IoU 0.5..0.9 with and without TTA, as the mean over
images (as EmbedSeg reports it) and pooled over all objects, plus Dice2, AJI, F1 and PQ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from blastoseg.instances import Instances

sys.path.insert(0, str(Path(__file__).resolve().parent))
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dsb2018"


def load_split(part: str, data: Path = DATA) -> list[tuple[str, np.ndarray, Instances]]:
    """The greyscale (2D) images of one part of the split, with their instances."""
    ids = json.loads((data / "split.json").read_text())[part]
    out = []
    for sid in ids:
        image = tifffile.imread(data / "images" / f"{sid}.tif")
        if image.ndim != 2:
            continue
        out.append((sid, image.astype(np.float32), Instances.from_label_image(tifffile.imread(data / "labels" / f"{sid}.tif"))))
    return out


def cmd_train(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import fine_tune_start
    from blastoseg.inference.preprocess import normalize
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import Budget, TrainOptions, train

    pairs, held = split_train(load_split("train"))
    # Validation on 256x256 corner crops keeps it to a few seconds however large the image.
    val = [(normalize(image)[:256, :256], truth.cropped(0, 0, *image[:256, :256].shape)) for _, image, truth in held[: args.val_images]]
    source = PairSource(pairs)
    config = {"offset_scale": 64.0, "sigma_scale": 8.0, "min_size": 8, "invert_bright_background": True}
    model = fine_tune_start(args.init, device="cpu") if args.init else new_model("embedseg", config)
    options = TrainOptions(
        Budget(minutes=args.minutes, clock=args.clock), batch=args.batch, lr=args.lr, augmentation=Augmentation(crop=args.crop),
        validate_every=args.validate_every, device=args.device, ema_decay=args.ema,
        description=f"DSB2018 greyscale train split ({len(source.pairs)} train / {len(held)} held out); "
        f"command: python benchmarks/dsb.py train {' '.join(sys.argv[2:])}",
    )
    for event in train(model, source, options, args.output, validation=val):
        if event.step % 20 == 0 or event.validation is not None:
            print(json.dumps(event.as_dict()), flush=True)


def held_out(data: Path = DATA) -> list[tuple[str, np.ndarray, Instances]]:
    """The 15% of the train split that training holds out."""
    return split_train(load_split("train", data))[1]


def cmd_tune(args: argparse.Namespace) -> None:
    """Pick the seed and foreground thresholds on the held-out training images (never the test split)."""
    from tuning import tune_thresholds

    items = [(image, truth) for _, image, truth in held_out()]
    tune_thresholds(args.model, items, args.tta, args.device, "DSB2018 train split, the 15% held out from training")


def cmd_sizes(args: argparse.Namespace) -> None:
    """Record the training split's object sizes in a model trained before `train` did so
    itself (`object_size`: frames of far larger nuclei are then segmented again, shrunk)."""
    from blastoseg import checkpoint
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import record_training_sizes

    model = checkpoint.load(args.model, device="cpu")
    model.config.pop("object_diameters", None)
    record_training_sizes(model.config, PairSource(split_train(load_split("train"))[0]).for_model(model.config))
    checkpoint.save(model, model.path)
    print(json.dumps({"model": str(args.model), "object_diameters": model.config["object_diameters"]}))


THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(9)]


def split_train(items: list) -> tuple[list, list]:
    """(training pairs, held-out items): the same fixed 15% held out by every DSB benchmark."""
    order = np.random.default_rng(0).permutation(len(items))
    n_val = max(1, int(round(0.15 * len(items))))
    return [(items[i][1], items[i][2]) for i in order[n_val:]], [items[i] for i in order[:n_val]]


def score(items: list, segment_one: Callable[[np.ndarray], Instances]) -> dict:
    """The DSB scores of `segment_one` over (id, image, truth) items: AP_dsb at IoU 0.5..0.9 as
    the mean over images (as EmbedSeg reports it) and pooled over objects; Dice2, AJI, F1@0.5
    and PQ as means over images (as the FCRNet paper's table); the seconds taken."""
    from blastoseg.metrics import aji, ap_dsb_counts, dice2, panoptic_quality

    per_image, counts, means = [], np.zeros((len(THRESHOLDS), 3)), {"Dice2": [], "AJI": [], "F1": [], "PQ": []}
    start = time.perf_counter()
    for _, image, truth in items:
        found = segment_one(image)
        c = np.array([ap_dsb_counts(found, truth, t) for t in THRESHOLDS], float)
        counts += c
        per_image.append(c[:, 0] / np.maximum(c.sum(1), 1))
        tp, fp, fn = c[0]
        means["F1"].append(2 * tp / max(2 * tp + fp + fn, 1))
        means["Dice2"].append(dice2(found, truth))
        means["AJI"].append(aji(found, truth))
        means["PQ"].append(panoptic_quality(found, truth)["PQ"])
    return {
        **{k: round(float(np.mean(v)), 4) for k, v in means.items()},
        "AP_dsb_mean_over_images": dict(zip(map(str, THRESHOLDS), np.mean(per_image, 0).round(4).tolist())),
        "AP_dsb_pooled": dict(zip(map(str, THRESHOLDS), (counts[:, 0] / counts.sum(1)).round(4).tolist())),
        "mean_AP_0.5_0.9": round(float(np.mean(per_image)), 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def cmd_evaluate(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load
    from blastoseg.inference.predict import segment

    model = load(args.model, device=args.device)
    items = load_split("test")
    report: dict = {"model": str(args.model), "n_images": len(items), "n_objects": int(sum(len(g) for _, _, g in items))}
    for tta in (False, True):
        report["tta" if tta else "no_tta"] = score(items, lambda image: segment(image, model, tta=tta, device=args.device))
    print(json.dumps(report, indent=1))


def add_train_arguments(t: argparse.ArgumentParser, output: str) -> argparse.ArgumentParser:
    """The training options every DSB benchmark shares."""
    t.add_argument("--minutes", type=float, default=30)
    t.add_argument("--clock", choices=("wall", "cpu"), default="cpu", help="budget in wall-clock or process CPU minutes")
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
