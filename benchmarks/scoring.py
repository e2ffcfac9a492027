"""The scores the benchmarks report, and how they print them.

`scores` picks keys of `metrics.evaluate` (see its docstring for each one's meaning),
rounded for JSON; `dsb_scores` is the DSB2018 table: per-image means as EmbedSeg and the
FCRNet paper report them, and the pooled AP_dsb.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from blastoseg.instances import Instances

if TYPE_CHECKING:
    from blastoseg.model import Model

# Amodal segmentation: DSB-style mAP and AP, COCO AP, recall by occlusion, area error.
DEFAULT_KEYS = ("mAP", "AP_dsb@0.50", "AP_dsb@0.75", "AP", "AP50", "AP75", "AR_none", "AR_partial", "AR_heavy",
                "area_error_median")
COCO_KEYS = ("AP", "AP50", "AP75", "AR100", "AR_none", "AR_partial", "AR_heavy")
DSB_THRESHOLDS = [round(0.5 + 0.05 * i, 2) for i in range(9)]  # IoU 0.5..0.9


def scores(found: Sequence[Instances], truth: Sequence[Instances], keys: Sequence[str] = DEFAULT_KEYS) -> dict[str, Any]:
    """`keys` of `metrics.evaluate(found, truth)`, floats rounded to 4 places, NaN as None."""
    from blastoseg.metrics import evaluate

    result = evaluate(found, truth)
    return {k: _rounded(result[k]) for k in keys}


def _rounded(value: float) -> float | int | None:
    if isinstance(value, (int, np.integer)):
        return int(value)
    return None if math.isnan(value) else round(float(value), 4)


def segment_timed(model: Model, images: Sequence[np.ndarray], tta: bool, device: object) -> tuple[list[Instances], float]:
    """Every image segmented by `predict.segment`, and the seconds per image."""
    from blastoseg.inference.predict import segment

    start = time.perf_counter()
    found = [segment(image, model, tta=tta, device=device) for image in images]
    return found, round((time.perf_counter() - start) / max(len(images), 1), 3)


def dsb_scores(items: Sequence[tuple[str, np.ndarray, Instances]], segment_one: Callable[[np.ndarray], Instances]) -> dict[str, Any]:
    """The DSB scores of `segment_one` over (name, image, truth) items: AP_dsb at IoU 0.5..0.9 as
    the mean over images (as EmbedSeg reports it) and pooled over objects; Dice2, AJI, F1@0.5
    and PQ as means over images (as the FCRNet paper's table); the seconds taken."""
    from blastoseg.metrics import aji, ap_dsb_counts, dice2, panoptic_quality

    per_image, counts = [], np.zeros((len(DSB_THRESHOLDS), 3))
    means: dict[str, list[float]] = {"Dice2": [], "AJI": [], "F1": [], "PQ": []}
    start = time.perf_counter()
    for _, image, truth in items:
        found = segment_one(image)
        c = np.array([ap_dsb_counts(found, truth, t) for t in DSB_THRESHOLDS], float)
        counts += c
        per_image.append(c[:, 0] / np.maximum(c.sum(1), 1))
        tp, fp, fn = c[0]
        means["F1"].append(2 * tp / max(2 * tp + fp + fn, 1))
        means["Dice2"].append(dice2(found, truth))
        means["AJI"].append(aji(found, truth))
        means["PQ"].append(panoptic_quality(found, truth)["PQ"])
    return {
        **{k: round(float(np.mean(v)), 4) for k, v in means.items()},
        "AP_dsb_mean_over_images": dict(zip(map(str, DSB_THRESHOLDS), np.mean(per_image, 0).round(4).tolist())),
        "AP_dsb_pooled": dict(zip(map(str, DSB_THRESHOLDS), (counts[:, 0] / counts.sum(1)).round(4).tolist())),
        "mean_AP_0.5_0.9": round(float(np.mean(per_image)), 4),
        "seconds": round(time.perf_counter() - start, 1),
    }


def print_report(report: dict[str, Any]) -> None:
    """A benchmark's result: one indented JSON object on stdout (progress goes to stderr)."""
    print(json.dumps(report, indent=1), flush=True)
