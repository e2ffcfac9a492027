"""FCRNet on DSB2018 greyscale nuclei (the split and training flags of benchmarks.dsb).

    python -m benchmarks.fcrnet_dsb train --minutes 30 [--colours 4] -o models/fcrnet-nuclei.safetensors
    python -m benchmarks.fcrnet_dsb evaluate -m models/fcrnet-nuclei.safetensors
    python -m benchmarks.fcrnet_dsb speed -m models/fcrnet-nuclei.safetensors
    python -m benchmarks.fcrnet_dsb tune -m MODEL --save      # min size and rescaling, held-out, with TTA

`evaluate` prints JSON per variant (no TTA with the paper's argmax post-processing or the
affinity one; 8-fold TTA merged by affinity averaging or by instance consensus): Dice2,
AJI, F1@0.5 and PQ (means over images, as the paper's table), AP_dsb at IoU 0.5..0.9
(mean over images and pooled) and the seconds taken, plus the `speed` section.
`speed` alone: post-processing images/s on the 512 x 512 maps of a test image, and the
seconds to segment a 500 x 500 frame with 8-fold TTA (network included).
The colour-count ablation of the paper (K = 3, 4, 10) is `train --colours K`.
`tune` scores the 15 % of the train split held out from training, with the model's TTA,
for each `min_size` of `--min-sizes`, with and without shrinking frames of nuclei larger
than the training ones (`object_diameters`); `--save` keeps the best (by PQ, then AJI).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import TYPE_CHECKING

import numpy as np

from benchmarks import datasets, runner
from benchmarks.dsb import add_train_arguments, train_options
from benchmarks.scoring import dsb_scores, print_report
from blastoseg.instances import Instances

if TYPE_CHECKING:
    from blastoseg.model import Model
    from blastoseg.training.train import TrainEvent

VARIANTS = {  # name: (tta, config["tta"])
    "no_tta_argmax": (False, "instances"),
    "no_tta_affinity": (False, "affinity"),
    "tta_affinity": (True, "affinity"),
    "tta_instances": (True, "instances"),
}


def segment_variant(image: np.ndarray, model: Model, tta: bool, mode: str, device: object) -> Instances:
    """`predict.segment` with FCRNet's TTA merge set to `mode` (predict asks `tta_merge_for`)."""
    from blastoseg.inference.predict import segment

    return segment(image, dataclasses.replace(model, config={**model.config, "tta": mode}), tta=tta, device=device)


def cmd_train(args: argparse.Namespace) -> None:
    from blastoseg.inference.preprocess import normalize
    from blastoseg.training.sources import PairSource

    pairs, held = datasets.dsb_train_split()
    val = [(normalize(image), truth) for _, image, truth in held[: args.val_images]]
    source = PairSource(pairs)
    config = {"colours": args.colours, "min_size": args.min_size, "tta": args.tta, **json.loads(args.config)}
    model = runner.starting_model("fcrnet", config, args.init)
    method = model.method

    def alpha(event: TrainEvent) -> dict:  # train() applies the alpha schedule through `on_progress`; here it is only logged
        return {"alpha": method.on_progress(model.config, event.fraction)["train_alpha"]}

    options = train_options(args, len(source.pairs), len(held), "fcrnet_dsb")
    runner.run_training(model, source, options, args.output, validation=val, extra=alpha)


def _frame(items: list, side: int) -> np.ndarray:
    """A side x side crop of the test image with the most nuclei (reflect-padded if smaller)."""
    image = max(items, key=lambda item: len(item[2]))[1]
    image = np.pad(image, [(0, max(side - n, 0)) for n in image.shape], mode="reflect")
    return image[:side, :side]


def speed(model: Model, items: list, device: object, repeats: int) -> dict:
    import torch

    from blastoseg.inference.predict import Predictor
    from blastoseg.inference.preprocess import normalize

    out: dict = {"torch_threads": torch.get_num_threads()}
    maps = Predictor(model, False, device).view_maps(normalize(_frame(items, 512)))[0]
    for mode in ("instances", "affinity"):
        config = {**model.config, "tta": mode}
        found = model.method.postprocess(maps, config)
        start = time.perf_counter()
        for _ in range(repeats):
            model.method.postprocess(maps, config)
        key = "argmax" if mode == "instances" else "affinity"
        out[f"postprocess_{key}_images_per_s_512"] = round(repeats / (time.perf_counter() - start), 1)
        out[f"postprocess_{key}_instances"] = len(found)
    frame = _frame(items, 500)
    for mode in ("affinity", "instances"):
        segment_variant(frame, model, True, mode, device)  # warm-up (fused network, allocator)
        times, cpu = [], []
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            segment_variant(frame, model, True, mode, device)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out[f"segment_500_tta_{mode}_seconds"] = round(float(np.median(times)), 3)
        # CPU seconds summed over threads: the wall time on an otherwise idle machine is
        # at least this divided by the thread count.
        out[f"segment_500_tta_{mode}_cpu_seconds"] = round(float(np.median(cpu)), 3)
    return out


def cmd_evaluate(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load
    from blastoseg.device import resolve_device

    device = resolve_device(args.device)
    model = load(args.model, device=device)
    items = datasets.dsb("test")[: args.limit]
    report: dict = {"model": str(args.model), "colours": model.config["colours"], "default_tta": model.config["tta"],
                    "n_images": len(items), "n_objects": int(sum(len(g) for _, _, g in items))}
    for name in args.variants:
        tta, mode = VARIANTS[name]
        report[name] = dsb_scores(items, lambda image, tta=tta, mode=mode: segment_variant(image, model, tta, mode, device))
    if args.repeats:
        report["speed"] = speed(model, items, device, args.repeats)
    print_report(report)


def cmd_speed(args: argparse.Namespace) -> None:
    from blastoseg.checkpoint import load
    from blastoseg.device import resolve_device

    device = resolve_device(args.device)
    print_report(speed(load(args.model, device=device), datasets.dsb("test"), device, args.repeats))


def cmd_tune(args: argparse.Namespace) -> None:
    from blastoseg import checkpoint
    from blastoseg.device import resolve_device

    device = resolve_device(args.device)
    model = checkpoint.load(args.model, device=device)
    sizes = model.pipeline.object_diameters
    items = datasets.dsb_train_split()[1]
    results = {}
    for min_size in args.min_sizes:
        for shrink in (True, False) if sizes else (False,):
            trial = dataclasses.replace(model, config={**model.config, "min_size": min_size},
                                        pipeline=model.pipeline.replaced(object_diameters=sizes if shrink else None))
            result = dsb_scores(items, lambda image, trial=trial: segment_variant(image, trial, True, trial.config["tta"], device))
            results[min_size, shrink] = result
            shown = {k: result[k] for k in ("AJI", "PQ", "Dice2", "F1", "mean_AP_0.5_0.9")}
            print(json.dumps({"min_size": min_size, "shrink_large": shrink, **shown}), flush=True)
    min_size, shrink = max(results, key=lambda key: (results[key]["PQ"], results[key]["AJI"]))
    if args.save:
        model.config["min_size"] = min_size
        if not shrink:
            model.pipeline = model.pipeline.replaced(object_diameters=None)
        checkpoint.save(model, model.path)
    print(json.dumps({"chosen": {"min_size": min_size, "shrink_large": shrink}, "saved": bool(args.save), "held_out_images": len(items)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = add_train_arguments(sub.add_parser("train"), "models/fcrnet-nuclei.safetensors")
    t.add_argument("--colours", type=int, default=4, help="K, background included (paper's ablation: 3, 4, 10)")
    t.add_argument("--config", default="{}", help="JSON merged into the new model's config, e.g. '{\"separation_weight\": 5}'")
    t.add_argument("--tta", choices=("affinity", "instances"), default="instances", help="TTA merge stored in the model")
    t.add_argument("--min-size", type=int, default=16, help="smallest instance kept, pixels (8 let fragments through)")
    e = sub.add_parser("evaluate")
    e.add_argument("-m", "--model", default="models/fcrnet-nuclei.safetensors")
    e.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS))
    e.add_argument("--limit", type=int, default=None, help="only the first N test images (quick checks)")
    e.add_argument("--repeats", type=int, default=20, help="post-processing timing repeats; 0 skips the speed section")
    e.add_argument("--device", default="auto")
    s = sub.add_parser("speed")
    s.add_argument("-m", "--model", default="models/fcrnet-nuclei.safetensors")
    s.add_argument("--repeats", type=int, default=20)
    s.add_argument("--device", default="auto")
    u = sub.add_parser("tune")
    u.add_argument("-m", "--model", default="models/fcrnet-nuclei.safetensors")
    u.add_argument("--min-sizes", type=int, nargs="+", default=[16, 32, 48, 64])
    u.add_argument("--save", action="store_true", help="store the best setting in the model file")
    u.add_argument("--device", default="auto")
    args = parser.parse_args()
    {"train": cmd_train, "evaluate": cmd_evaluate, "speed": cmd_speed, "tune": cmd_tune}[args.command](args)


if __name__ == "__main__":
    main()
