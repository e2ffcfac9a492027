"""Choose EmbedSeg's seed and foreground thresholds on held-out images (never a test set).

Used by `dsb.py tune` and `embryo.py --tune`: the network runs once per image and only
the clustering is repeated over the grid; the best pair (mean AP_dsb over IoU 0.5-0.9)
is written into the checkpoint's config together with the whole grid.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

SEED_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)
FOREGROUND_THRESHOLDS = (0.4, 0.5)


def tune_thresholds(model_path: str, items: Sequence[tuple[np.ndarray, object]], tta: bool, device: str, source: str) -> dict:
    import torch

    from blastoseg import checkpoint
    from blastoseg.io import normalize, working_shape
    from blastoseg.metrics import ap_dsb
    from blastoseg.predict import Predictor
    from skimage.transform import resize

    model = checkpoint.load(model_path, device=device)
    predictor = Predictor(model, tta, checkpoint.resolve_device(device))
    maps, truths = [], []
    for image, truth in items:
        frame = normalize(np.asarray(image, np.float32))
        working = working_shape(frame.shape, model.config.get("working_size"))
        if working != frame.shape:
            frame = resize(frame, working, order=1, anti_aliasing=True).astype(np.float32)
            truth = truth.resized(working)
        maps.append(predictor.view_maps(frame).mean(0))
        truths.append(truth)
    results = {}
    for seed_t in SEED_THRESHOLDS:
        for fg_t in FOREGROUND_THRESHOLDS:
            config = {**model.config, "seed_threshold": seed_t, "foreground_threshold": fg_t}
            with torch.inference_mode():
                found = [model.method.postprocess(m, config) for m in maps]
            score = np.mean([[ap_dsb(f, t, iou) for iou in (0.5, 0.6, 0.7, 0.8, 0.9)] for f, t in zip(found, truths)])
            results[f"{seed_t},{fg_t}"] = round(float(score), 4)
            print(json.dumps({"seed_threshold": seed_t, "foreground_threshold": fg_t, "mean_AP_0.5_0.9": results[f"{seed_t},{fg_t}"]}), flush=True)
    best = max(results, key=results.get)
    seed_t, fg_t = (float(v) for v in best.split(","))
    model.config.update(seed_threshold=seed_t, foreground_threshold=fg_t)
    model.metadata["tuning"] = {"images": len(items), "source": source, "tta": tta, "grid_mean_AP_0.5_0.9": results}
    checkpoint.save(model, model.path)
    chosen = {"seed_threshold": seed_t, "foreground_threshold": fg_t, "mean_AP_0.5_0.9": results[best]}
    print(json.dumps({"chosen": chosen}))
    return chosen
