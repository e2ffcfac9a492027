"""Choose a method's post-processing thresholds on held-out images (never a test set).

Used by `blastoseg tune` and the benchmarks: the network runs once per image and only
the post-processing is repeated over the method's `tuning_grid` (e.g. EmbedSeg's seed
and foreground thresholds, layered's foreground threshold and bandwidth); the best
setting (mean AP_dsb over IoU 0.5-0.9) is written into the model's config, the whole
grid into its metadata. Methods that merge TTA views as instances are tuned on single views;
then `tune_tta` runs the whole pipeline with TTA on the same images over the method's
`tta_tuning_grid` (e.g. a laxer threshold or another vote count for the consensus of
the views) and stores the best as the pipeline's `tta_settings`, which `predict` applies
with TTA.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from blastoseg.instances import Instances
    from blastoseg.model import Model


def tune_thresholds(model: Model, items: Sequence[tuple[np.ndarray, Instances]], tta: bool, device: str, source: str) -> dict:
    """Choose the `tuning_grid` settings on `items` and write them into `model` (config and
    metadata["tuning"]); the caller saves it. Returns the choice and its score."""
    import torch

    from blastoseg.device import resolve_device
    from blastoseg.inference import framing
    from blastoseg.inference.predict import Predictor
    from blastoseg.inference.preprocess import model_input
    from blastoseg.methods.base import DenseMethod
    from blastoseg.metrics import ap_dsb
    from blastoseg.training.sources import to_working_size

    model.pipeline = model.pipeline.replaced(tta_settings={})  # a re-tune starts from the single-view settings
    grid = model.method.tuning_grid
    if not grid:
        raise ValueError(f"the {model.method.name} method declares no post-processing settings to tune (tuning_grid)")
    if not isinstance(model.method, DenseMethod):
        raise ValueError(f"{model.method.name} is a detector: its settings are tuned on whole-pipeline results")
    tta = tta and model.method.tta_merge_for(model.config) == "fields"  # instance merges cannot average maps
    predictor = Predictor(model, tta, resolve_device(device))
    maps, truths = [], []
    for image, truth in items:
        frame = model_input(np.asarray(image, np.float32), model.pipeline)
        if model.pipeline.frame_fill:  # the window around the true cells, not a quick pass's
            frame, truth = framing.framed(frame, truth, float(model.pipeline.frame_fill))
        frame, truth = to_working_size(frame, truth, model.pipeline.working_size)
        maps.append(predictor.view_maps(frame).mean(0))
        truths.append(truth)
    results = {}
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        with torch.inference_mode():
            found = [model.method.postprocess(m, {**model.config, **setting}) for m in maps]
        score = round(float(np.mean([[ap_dsb(f, t, iou) for iou in (0.5, 0.6, 0.7, 0.8, 0.9)] for f, t in zip(found, truths)])), 4)
        results[json.dumps(setting)] = score
        print(json.dumps({**setting, "mean_AP_0.5_0.9": score}), flush=True)
    best = max(results, key=results.get)
    model.config.update(json.loads(best))
    model.metadata["tuning"] = {"images": len(items), "source": source, "tta": tta, "grid_mean_AP_0.5_0.9": results}
    chosen = {**json.loads(best), "mean_AP_0.5_0.9": results[best]}
    if not tta and model.method.tta_tuning_grid:
        merged = tune_tta(model, items, device)
        chosen.update(tta_settings=merged["settings"], tta_mAP=merged["mAP"], tta_mAP_without=merged["without"])
    print(json.dumps({"chosen": chosen}))
    return chosen


def tune_tta(model: Model, items: Sequence[tuple[np.ndarray, Instances]], device: str) -> dict:
    """The settings of the method's `tta_tuning_grid` with which the whole pipeline with TTA
    (framing pass included) scores best on the held-out `items`, by mAP (DSB, IoU
    0.5:0.95); the model's own settings are in the grid and win ties. Writes the ones that
    differ into the pipeline's `tta_settings` and the grid into model.metadata["tuning"]."""
    from blastoseg.inference.predict import segment
    from blastoseg.metrics import mean_ap_dsb

    current = {**model.pipeline.as_dict(), **model.config}
    grid = {k: tuple(dict.fromkeys((*v, current.get(k)))) for k, v in model.method.tta_tuning_grid.items()}
    own = {k: current.get(k) for k in grid}
    results = {}
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        model.pipeline = model.pipeline.replaced(tta_settings=setting)
        found = [segment(image, model, tta=True, device=device) for image, _ in items]
        score = round(float(np.mean([mean_ap_dsb(f, t) for f, (_, t) in zip(found, items)])), 4)
        results[json.dumps(setting)] = score
        print(json.dumps({"tta_settings": setting, "mAP": score}), file=sys.stderr, flush=True)
    best = max(results, key=lambda k: (results[k], json.loads(k) == own))
    chosen = {k: v for k, v in json.loads(best).items() if v != own[k]}
    model.pipeline = model.pipeline.replaced(tta_settings=chosen)
    model.metadata.setdefault("tuning", {})["tta_mAP_grid"] = results
    return {"settings": chosen, "mAP": results[best], "without": results[json.dumps(own)], "grid": results}
