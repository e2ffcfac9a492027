"""`blastoseg evaluate`: predictions scored against ground truth, as JSON."""

from __future__ import annotations

import argparse
import json

from blastoseg.cli.common import jsonable, progress, warn


def run(args: argparse.Namespace) -> int:
    from blastoseg import metrics
    from blastoseg.instances import Instances
    from blastoseg.training import datasets

    if not 0.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold is a score between 0 and 1; got {args.threshold}")
    gts = datasets.read_instances_dir(args.gt_dir, progress=lambda it: progress(it, desc="read ground truth"))
    preds = datasets.read_instances_dir(args.pred_dir, progress=lambda it: progress(it, desc="read predictions"))
    if not preds.keys() & gts.keys():  # scores of all-empty predictions would look like a result
        raise ValueError(
            f"no prediction in {args.pred_dir} has the name of a ground-truth image in {args.gt_dir} "
            f"(e.g. {next(iter(preds))!r} and {next(iter(gts))!r}); predictions are matched by name, "
            "<name>.tif or <name>_amodal.tif against masks/<name>.tif"
        )
    missing = [name for name in gts if name not in preds]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        warn(f"{len(missing)} ground-truth images have no prediction in {args.pred_dir} and count as empty: {shown}")
    extra = [name for name in preds if name not in gts]
    if extra:
        warn(f"{len(extra)} predictions have no ground truth and are ignored: {', '.join(extra[:5])}")
    names = list(gts)
    pred_list = [preds.get(name, Instances.empty(gts[name].shape)) for name in names]
    for name, pred in zip(names, pred_list):
        if pred.shape != gts[name].shape:
            raise ValueError(f"prediction {name!r} is {pred.shape} but its ground truth is {gts[name].shape}")
    pred_list = [pred[pred.scores >= args.threshold] for pred in pred_list]
    result = metrics.evaluate(pred_list, [gts[name] for name in names])
    print(json.dumps({k: jsonable(v) for k, v in result.items()}, indent=2))
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score predictions against ground truth, print JSON")
    p.add_argument("pred_dir", metavar="PRED_DIR", help="dataset folder or folder of <name>.tif / <name>_amodal.tif")
    p.add_argument("gt_dir", metavar="GT_DIR", help="dataset folder or folder of ground-truth label TIFFs")
    p.add_argument(
        "--threshold", type=float, default=0.0, metavar="SCORE", help="ignore predictions scoring below SCORE (default 0: keep all)"
    )
    p.set_defaults(func=run)
