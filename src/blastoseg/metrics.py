"""Instance segmentation metrics on amodal `Instances`.

Every metric compares the AMODAL masks through `Instances.iou`, so instances may overlap;
a label image would hide their occluded parts and cannot be used.

Two matchings are used, each where its paper uses it:

- `match` (DSB AP, PQ, area error): one-to-one Hungarian matching that maximises the number
  of pairs with IoU >= threshold, then their summed IoU. With overlapping amodal masks a
  prediction can exceed IoU 0.5 with two ground truths, so the uniqueness argument behind
  "IoU > 0.5 matches are unique" no longer holds and a real assignment is needed.
- COCO AP / AR and occlusion recall: pycocotools' greedy matching. Per image the top 100
  detections by score, in descending score order, each take the still unmatched ground
  truth of highest IoU >= threshold (single class, no crowd, no area ranges).

IoU thresholds are the decimal values 0.50, 0.55, ..., 0.95 (`IOU_THRESHOLDS`); pycocotools'
linspace differs only in the last bit of 0.90, which no real IoU distinguishes.

Keys returned by `evaluate` (`EVALUATE_KEYS`; floats, counts are ints, NaN where undefined):

  n_images, n_gt, n_pred          dataset size (instances summed over images)
  mAP                             mean over images of `mean_ap_dsb` (IoU 0.50:0.05:0.95)
  AP_dsb@0.50 ... AP_dsb@0.90     mean over images of `ap_dsb` at that IoU
  AP_dsb@0.50_pooled ...          sum TP / sum (TP + FP + FN) over the dataset at that IoU
  AP, AP50, AP75, AR100           `coco_ap`
  AJI                             mean over images of `aji`
  PQ, SQ, RQ                      `panoptic_quality` pooled over the dataset
  AR_none, AR_partial, AR_heavy   `occlusion_recall` at IoU 0.5
  area_error_median               median |A_pred - A_gt| / A_gt of amodal areas, pairs of `match` at 0.5

An image with neither predictions nor ground truth scores 1.0 in `ap_dsb`, `aji` and
`panoptic_quality`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from blastoseg.instances import Instances

IOU_THRESHOLDS = np.round(np.arange(0.5, 1.0, 0.05), 2)  # 0.50 ... 0.95, exact decimals
DSB_REPORT_THRESHOLDS = IOU_THRESHOLDS[:9]  # 0.50 ... 0.90
RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's 101-point interpolation
MAX_DETS = 100
OCCLUSION_BINS = ("none", "partial", "heavy")
OCCLUSION_EDGES = (1e-5, 0.25)  # none [0, 1e-5], partial (1e-5, 0.25], heavy (0.25, 1]

EVALUATE_KEYS: tuple[str, ...] = (
    ("n_images", "n_gt", "n_pred", "mAP")
    + tuple(f"AP_dsb@{t:.2f}" for t in DSB_REPORT_THRESHOLDS)
    + tuple(f"AP_dsb@{t:.2f}_pooled" for t in DSB_REPORT_THRESHOLDS)
    + ("AP", "AP50", "AP75", "AR100", "AJI", "PQ", "SQ", "RQ")
    + tuple(f"AR_{b}" for b in OCCLUSION_BINS)
    + ("area_error_median",)
)

_EMPTY = np.zeros(0, np.intp)


# ---------------------------------------------------------------------- matching
def match_iou(iou: np.ndarray, threshold: float = 0.5, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matching on an (N, M) IoU matrix: the most pairs with IoU >= threshold
    (> when `strict`), ties broken by the highest summed IoU. Returns (row_idx, col_idx)."""
    iou = np.asarray(iou, np.float64)
    valid = iou > threshold if strict else iou >= threshold
    if not valid.any():
        return _EMPTY, _EMPTY.copy()
    # A valid pair is worth 1 plus under 1/min(N, M) of its IoU, so one more pair always
    # outweighs any gain in IoU: first cardinality, then quality.
    weight = np.where(valid, 1.0 + iou / (min(iou.shape) + 1), 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    keep = valid[rows, cols]
    return rows[keep], cols[keep]


def match(pred: Instances, gt: Instances, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hungarian matching of `pred` to `gt` on amodal IoU; returns (pred_idx, gt_idx, ious)."""
    iou = pred.iou(gt)
    rows, cols = match_iou(iou, threshold)
    return rows, cols, iou[rows, cols]


def _greedy_match(iou: np.ndarray, scores: np.ndarray, thresholds: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """pycocotools' per-image matching of the top MAX_DETS detections.

    Returns (scores of the kept detections in rank order, det_matched (T, D), gt_matched (T, G)).
    """
    order = np.argsort(-np.asarray(scores), kind="mergesort")[:MAX_DETS]
    iou = iou[order]
    n_det, n_gt = iou.shape
    det_m = np.zeros((len(thresholds), n_det), bool)
    gt_m = np.zeros((len(thresholds), n_gt), bool)
    if n_det and n_gt:
        best = iou.max(1)
        for k, t in enumerate(thresholds):
            floor = min(float(t), 1 - 1e-10)  # as pycocotools, so IoU 1.0 matches at t = 1
            taken = gt_m[k]
            for d in np.flatnonzero(best >= floor):
                cand = np.where(taken, -1.0, iou[d])
                g = n_gt - 1 - int(np.argmax(cand[::-1]))  # pycocotools keeps the LAST tied GT
                if cand[g] >= floor:
                    taken[g] = True
                    det_m[k, d] = True
    return np.asarray(scores)[order], det_m, gt_m


# ---------------------------------------------------------------------- DSB AP
def _dsb_counts(iou: np.ndarray, threshold: float) -> tuple[int, int, int]:
    tp = len(match_iou(iou, threshold)[0])
    return tp, iou.shape[0] - tp, iou.shape[1] - tp


def _dsb_ratio(tp: float, fp: float, fn: float) -> float:
    total = tp + fp + fn
    return 1.0 if total == 0 else float(tp / total)


def ap_dsb_counts(pred: Instances, gt: Instances, threshold: float = 0.5) -> tuple[int, int, int]:
    """(TP, FP, FN) of `match` at `threshold`, for pooling over images."""
    return _dsb_counts(pred.iou(gt), threshold)


def ap_dsb(pred: Instances, gt: Instances, threshold: float = 0.5) -> float:
    """Data Science Bowl 2018 "AP": TP / (TP + FP + FN); 1.0 when both are empty."""
    return _dsb_ratio(*ap_dsb_counts(pred, gt, threshold))


def mean_ap_dsb(pred: Instances, gt: Instances, thresholds: Sequence[float] = IOU_THRESHOLDS) -> float:
    """`ap_dsb` averaged over IoU thresholds (default 0.50:0.05:0.95)."""
    iou = pred.iou(gt)
    return float(np.mean([_dsb_ratio(*_dsb_counts(iou, t)) for t in thresholds]))


# ---------------------------------------------------------------------- COCO AP
def _coco_summary(ranked: Sequence[tuple[np.ndarray, np.ndarray]], n_gt: int) -> dict[str, float]:
    """pycocotools' accumulate + summarize for one class, from per-image (scores, det_matched)."""
    if n_gt == 0:
        return {"AP": np.nan, "AP50": np.nan, "AP75": np.nan, "AR100": np.nan}
    n_thr = len(IOU_THRESHOLDS)
    scores = np.concatenate([s for s, _ in ranked]) if ranked else np.zeros(0)
    det_m = np.concatenate([m for _, m in ranked], axis=1) if ranked else np.zeros((n_thr, 0), bool)
    precision = np.zeros((n_thr, len(RECALL_POINTS)))
    recall = np.zeros(n_thr)
    if scores.size:
        order = np.argsort(-scores, kind="mergesort")
        tp = np.cumsum(det_m[:, order], axis=1, dtype=np.float64)
        fp = np.cumsum(~det_m[:, order], axis=1, dtype=np.float64)
        rc = tp / n_gt
        pr = tp / (tp + fp + np.spacing(1))
        # Precision envelope: best precision at any recall >= this one.
        pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
        recall = rc[:, -1]
        for k in range(n_thr):
            idx = np.searchsorted(rc[k], RECALL_POINTS, side="left")
            ok = idx < len(order)
            precision[k, ok] = pr[k, idx[ok]]
    ap = precision.mean(1)
    i50, i75 = (int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, t))[0]) for t in (0.5, 0.75))
    return {"AP": float(ap.mean()), "AP50": float(ap[i50]), "AP75": float(ap[i75]), "AR100": float(recall.mean())}


def coco_ap(preds: Sequence[Instances], gts: Sequence[Instances]) -> dict[str, float]:
    """COCO mask AP over a dataset: keys AP (IoU .50:.05:.95), AP50, AP75, AR100; NaN without GT."""
    ranked, n_gt = [], 0
    for p, g in _pairs(preds, gts):
        scores, det_m, _ = _greedy_match(p.iou(g), p.scores, IOU_THRESHOLDS)
        ranked.append((scores, det_m))
        n_gt += len(g)
    return _coco_summary(ranked, n_gt)


# ---------------------------------------------------------------------- AJI, PQ
def _intersections(iou: np.ndarray, pred_areas: np.ndarray, gt_areas: np.ndarray) -> np.ndarray:
    # iou = I / (a + b - I)  =>  I = iou (a + b) / (1 + iou); I is an integer pixel count.
    return np.rint(iou * (pred_areas[:, None] + gt_areas[None, :]) / (1.0 + iou))


def _aji(iou: np.ndarray, pred_areas: np.ndarray, gt_areas: np.ndarray) -> float:
    n_pred, n_gt = iou.shape
    pred_areas, gt_areas = pred_areas.astype(np.float64), gt_areas.astype(np.float64)
    used = np.zeros(n_pred, bool)
    inter_sum, union_sum = 0.0, float(gt_areas.sum())
    if n_pred and n_gt:
        inter = _intersections(iou, pred_areas, gt_areas)
        best = np.argmax(iou, axis=0)  # per GT, its best prediction; one may serve several GTs
        hit = np.flatnonzero(iou[best, np.arange(n_gt)] > 0)
        i = inter[best[hit], hit]
        inter_sum = float(i.sum())
        # GTs without any overlapping prediction add their own area only (already in union_sum).
        union_sum += float((pred_areas[best[hit]] - i).sum())
        used[best[hit]] = True
    union_sum += float(pred_areas[~used].sum())
    return 1.0 if union_sum == 0 else inter_sum / union_sum


def aji(pred: Instances, gt: Instances) -> float:
    """Aggregated Jaccard Index (Kumar et al. 2017) on amodal masks.

    Each GT adds its intersection / union with the prediction of highest IoU (which may be
    shared by several GTs); predictions no GT picked add their area to the union.
    """
    return _aji(pred.iou(gt), pred.areas(), gt.areas())


def dice2(pred: Instances, gt: Instances) -> float:
    """Ensemble Dice (Vu et al. 2019): 2 sum |G & P| / sum (|G| + |P|) over all overlapping pairs."""
    if len(pred) == 0 or len(gt) == 0:
        return float(len(pred) == len(gt))
    iou = pred.iou(gt)
    overlap = iou > 0
    if not overlap.any():
        return 0.0
    pred_areas, gt_areas = pred.areas().astype(np.float64), gt.areas().astype(np.float64)
    sizes = pred_areas[:, None] + gt_areas[None, :]
    return float(2 * _intersections(iou, pred_areas, gt_areas)[overlap].sum() / sizes[overlap].sum())


def _pq_counts(iou: np.ndarray, threshold: float) -> np.ndarray:
    """(TP, FP, FN, summed IoU of TPs); matches need IoU strictly above threshold (Kirillov)."""
    rows, cols = match_iou(iou, threshold, strict=True)
    tp = len(rows)
    return np.array([tp, iou.shape[0] - tp, iou.shape[1] - tp, iou[rows, cols].sum()], np.float64)


def _pq_from_counts(counts: np.ndarray) -> dict[str, float]:
    tp, fp, fn, iou_sum = (float(v) for v in counts)
    if tp + fp + fn == 0:
        return {"PQ": 1.0, "SQ": 1.0, "RQ": 1.0}
    rq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = iou_sum / tp if tp else 0.0
    return {"PQ": sq * rq, "SQ": sq, "RQ": rq}


def panoptic_quality(pred: Instances, gt: Instances, threshold: float = 0.5) -> dict[str, float]:
    """Panoptic quality of one class (Kirillov et al. 2019): PQ = SQ * RQ, matches at IoU > threshold."""
    return _pq_from_counts(_pq_counts(pred.iou(gt), threshold))


# ---------------------------------------------------------------------- occlusion
def _occlusion_bins(gt: Instances) -> np.ndarray:
    """Per GT instance 0 (none), 1 (partial) or 2 (heavy) from its occlusion rate."""
    return np.searchsorted(np.asarray(OCCLUSION_EDGES), gt.occlusion_rates(), side="left")


def _occlusion_summary(recalled: np.ndarray, total: np.ndarray) -> dict[str, float]:
    return {
        f"AR_{name}": float(recalled[k] / total[k]) if total[k] else np.nan for k, name in enumerate(OCCLUSION_BINS)
    }


def occlusion_recall(preds: Sequence[Instances], gts: Sequence[Instances], threshold: float = 0.5) -> dict[str, float]:
    """Recall of GT instances binned by occlusion rate: keys AR_none, AR_partial, AR_heavy.

    A GT is recalled when COCO's greedy matching (top 100 detections) pairs it at IoU >= threshold.
    """
    recalled, total = np.zeros(3), np.zeros(3)
    for p, g in _pairs(preds, gts):
        _, _, gt_m = _greedy_match(p.iou(g), p.scores, [threshold])
        bins = _occlusion_bins(g)
        total += np.bincount(bins, minlength=3)
        recalled += np.bincount(bins[gt_m[0]], minlength=3)
    return _occlusion_summary(recalled, total)


# ---------------------------------------------------------------------- dataset
def _pairs(preds: Sequence[Instances], gts: Sequence[Instances]) -> list[tuple[Instances, Instances]]:
    if len(preds) != len(gts):
        raise ValueError(f"got {len(preds)} predictions for {len(gts)} ground-truth images")
    return list(zip(preds, gts))


def _mean(values: Sequence[float] | np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else np.nan


def evaluate(preds: Sequence[Instances], gts: Sequence[Instances]) -> dict[str, float]:
    """Every metric for a dataset of (prediction, ground truth) images; keys in `EVALUATE_KEYS`."""
    pairs = _pairs(preds, gts)
    # counts[i, k] = (TP, FP, FN) of image i at IOU_THRESHOLDS[k]
    counts = np.zeros((len(pairs), len(IOU_THRESHOLDS), 3), np.int64)
    aji_values, area_errors, ranked = [], [], []
    pq_counts = np.zeros(4)
    recalled, total = np.zeros(3), np.zeros(3)
    i50 = int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, 0.5))[0])
    for i, (p, g) in enumerate(pairs):
        iou = p.iou(g)  # the only pixel-level work: everything below reuses it
        pred_areas, gt_areas = p.areas(), g.areas()
        for k, t in enumerate(IOU_THRESHOLDS):
            counts[i, k] = _dsb_counts(iou, t)
        aji_values.append(_aji(iou, pred_areas, gt_areas))
        pq_counts += _pq_counts(iou, 0.5)
        rows, cols = match_iou(iou, 0.5)
        area_errors.extend(np.abs(pred_areas[rows] - gt_areas[cols]) / gt_areas[cols])
        scores, det_m, gt_m = _greedy_match(iou, p.scores, IOU_THRESHOLDS)
        ranked.append((scores, det_m))
        bins = _occlusion_bins(g)
        total += np.bincount(bins, minlength=3)
        recalled += np.bincount(bins[gt_m[i50]], minlength=3)

    per_total = counts.sum(-1)
    ratios = np.where(per_total > 0, counts[..., 0] / np.maximum(per_total, 1), 1.0)  # (images, thresholds)
    pooled = counts.sum(0)
    out: dict[str, float] = {
        "n_images": len(pairs),
        "n_gt": int(sum(len(g) for _, g in pairs)),
        "n_pred": int(sum(len(p) for p, _ in pairs)),
        "mAP": _mean(ratios.mean(1)) if len(pairs) else np.nan,
    }
    for t in DSB_REPORT_THRESHOLDS:
        k = int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, t))[0])
        out[f"AP_dsb@{t:.2f}"] = _mean(ratios[:, k])
    for t in DSB_REPORT_THRESHOLDS:
        k = int(np.flatnonzero(np.isclose(IOU_THRESHOLDS, t))[0])
        out[f"AP_dsb@{t:.2f}_pooled"] = _dsb_ratio(*pooled[k]) if len(pairs) else np.nan
    out.update(_coco_summary(ranked, out["n_gt"]))
    out["AJI"] = _mean(aji_values)
    out.update(_pq_from_counts(pq_counts) if len(pairs) else {"PQ": np.nan, "SQ": np.nan, "RQ": np.nan})
    out.update(_occlusion_summary(recalled, total))
    out["area_error_median"] = float(np.median(area_errors)) if area_errors else np.nan
    return out
