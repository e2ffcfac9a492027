"""Hand-computed checks of blastoseg.metrics; the arithmetic is in the comments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blastoseg.instances import Instances
from blastoseg.metrics import (
    EVALUATE_KEYS,
    aji,
    ap_dsb,
    ap_dsb_counts,
    coco_ap,
    dice2,
    evaluate,
    match,
    match_iou,
    mean_ap_dsb,
    occlusion_recall,
    panoptic_quality,
)

SHAPE = (60, 60)


def boxes(bxs, scores=None, depth=None, shape=SHAPE) -> Instances:
    """Instances whose amodal masks are filled boxes (y0, x0, y1, x1)."""
    pairs = [((y0, x0, y1, x1), np.ones((y1 - y0, x1 - x0), bool)) for y0, x0, y1, x1 in bxs]
    return Instances.from_masks(shape, pairs, scores=scores, depth=depth)


# Two 10x10 GT squares (area 100); predictions cut to 10x8 (IoU 80/100 = 0.8) and 10x6 (IoU 0.6).
GT2 = [(0, 0, 10, 10), (20, 20, 30, 30)]
PRED2 = [(0, 0, 10, 8), (20, 20, 30, 26)]


def test_match_returns_pairs_and_ious():
    p, g, ious = match(boxes(PRED2[::-1]), boxes(GT2), 0.5)
    order = np.argsort(p)
    assert p[order].tolist() == [0, 1] and g[order].tolist() == [1, 0]
    np.testing.assert_allclose(ious[order], [0.6, 0.8])
    # At 0.7 only the IoU 0.8 pair survives.
    p, g, ious = match(boxes(PRED2), boxes(GT2), 0.7)
    assert p.tolist() == [0] and g.tolist() == [0] and ious.tolist() == pytest.approx([0.8])


def test_match_iou_prefers_more_pairs_over_more_iou():
    # Max summed IoU alone picks (0,0)+(1,1) = 0.9 + 0.3 = 1.2 but only one pair reaches 0.5;
    # (0,1)+(1,0) = 0.5 + 0.55 = 1.05 gives two valid pairs, which is what TP counting needs.
    iou = np.array([[0.9, 0.5], [0.55, 0.3]])
    rows, cols = match_iou(iou, 0.5)
    assert sorted(zip(rows.tolist(), cols.tolist())) == [(0, 1), (1, 0)]
    # strict (PQ): IoU 0.5 is not > 0.5, so only one pair can be kept, the best one.
    rows, cols = match_iou(iou, 0.5, strict=True)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0)]


def test_ap_dsb_two_squares_known_ious():
    pred, gt = boxes(PRED2), boxes(GT2)
    # @0.5: both pairs match -> TP 2, FP 0, FN 0 -> 2/2 = 1
    assert ap_dsb(pred, gt, 0.5) == 1.0
    # @0.75: only the 0.8 pair -> TP 1, FP 1, FN 1 -> 1/3
    assert ap_dsb_counts(pred, gt, 0.75) == (1, 1, 1)
    assert ap_dsb(pred, gt, 0.75) == pytest.approx(1 / 3)
    # IoU exactly on the threshold counts (>=): 0.6 @0.6 and 0.8 @0.8
    assert ap_dsb(pred, gt, 0.6) == 1.0 and ap_dsb(pred, gt, 0.8) == pytest.approx(1 / 3)
    # thresholds .50 .55 .60 -> 1; .65 .70 .75 .80 -> 1/3; .85 .90 .95 -> 0 (TP 0, FP 2, FN 2)
    # mean = (3 + 4/3) / 10 = 13/30
    assert mean_ap_dsb(pred, gt) == pytest.approx(13 / 30)


def test_ap_dsb_false_positive_and_false_negative():
    gt = boxes(GT2 + [(40, 40, 50, 50)])
    # The two good predictions plus one on empty background: TP 2, FP 1, FN 1 -> 2/4
    pred = boxes(PRED2 + [(45, 0, 55, 10)])
    assert ap_dsb_counts(pred, gt, 0.5) == (2, 1, 1)
    assert ap_dsb(pred, gt, 0.5) == pytest.approx(0.5)
    # A prediction that misses its only GT: TP 0, FP 1, FN 1 -> 0
    assert ap_dsb(boxes([(45, 0, 55, 10)]), boxes([(0, 0, 10, 10)])) == 0.0


def test_empty_cases():
    empty, one = Instances.empty(SHAPE), boxes([(0, 0, 10, 10)])
    assert ap_dsb(empty, empty) == 1.0 and mean_ap_dsb(empty, empty) == 1.0
    assert ap_dsb_counts(one, empty, 0.5) == (0, 1, 0) and ap_dsb(one, empty) == 0.0
    assert ap_dsb_counts(empty, one, 0.5) == (0, 0, 1) and ap_dsb(empty, one) == 0.0
    assert aji(empty, empty) == 1.0 and aji(one, empty) == 0.0 and aji(empty, one) == 0.0
    assert panoptic_quality(empty, empty) == {"PQ": 1.0, "SQ": 1.0, "RQ": 1.0}
    assert panoptic_quality(empty, one) == {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0}
    assert all(np.isnan(v) for v in coco_ap([one], [empty]).values())
    assert coco_ap([empty], [one]) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR100": 0.0}
    res = evaluate([], [])
    assert res["n_images"] == 0 and np.isnan(res["mAP"]) and np.isnan(res["AP"])
    with pytest.raises(ValueError):
        evaluate([one], [])


def test_overlapping_amodal_masks():
    # GT A (0,0,10,10) lies behind GT B (0,5,10,15); they share 50 px. A label image would keep
    # only A's visible 10x5 half, so an exact amodal prediction could not score 1 against it.
    gt = boxes([(0, 0, 10, 10), (0, 5, 10, 15)], depth=[1, 0])
    assert gt.occlusion_rates().tolist() == [0.5, 0.0]
    amodal = boxes([(0, 0, 10, 10), (0, 5, 10, 15)], depth=[1, 0])
    p, g, ious = match(amodal, gt, 0.95)
    assert sorted(zip(p.tolist(), g.tolist())) == [(0, 0), (1, 1)] and ious.tolist() == [1.0, 1.0]
    assert mean_ap_dsb(amodal, gt) == 1.0 and aji(amodal, gt) == 1.0
    # A modal prediction (A's visible half only): IoU(A) = 50/100 = 0.5 -> 1.0 @0.5, 1/3 @0.75
    modal = boxes([(0, 0, 10, 5), (0, 5, 10, 15)])
    assert ap_dsb(modal, gt, 0.5) == 1.0 and ap_dsb(modal, gt, 0.75) == pytest.approx(1 / 3)
    # AJI: A's best prediction is the modal half (IoU 0.5 beats the B prediction's 50/150):
    # I 50, U 100; B is exact: I 100, U 100 -> (50 + 100) / (100 + 100) = 0.75
    assert aji(modal, gt) == pytest.approx(150 / 200)


def test_perfect_prediction_scores_one_everywhere():
    # Two layers: front square and two partly hidden squares, plus an isolated one.
    bxs = [(0, 0, 20, 20), (15, 0, 35, 20), (0, 10, 10, 30), (40, 40, 50, 50)]
    gt = boxes(bxs, depth=[0, 1, 1, 0])
    pred = boxes(bxs, scores=[0.9, 0.8, 0.7, 0.6], depth=[0, 1, 1, 0])
    res = evaluate([pred, pred], [gt, gt])
    assert set(res) == set(EVALUATE_KEYS)
    for key in EVALUATE_KEYS:
        if key.startswith("n_"):
            continue
        expected = 0.0 if key == "area_error_median" else 1.0
        assert res[key] == pytest.approx(expected, abs=1e-12), key
    assert (res["n_images"], res["n_gt"], res["n_pred"]) == (2, 8, 8)
    json.dumps(res)  # must serialise


def test_aji_hand_case():
    gt = boxes(GT2)
    # p1 (10x8) inside g1: I 80, U 100; p2 (10x5) inside g2: I 50, U 100; p3 (5x5 = 25 px) unmatched.
    # AJI = (80 + 50) / (100 + 100 + 25) = 130 / 225
    pred = boxes([(0, 0, 10, 8), (20, 20, 30, 25), (40, 40, 45, 45)])
    assert aji(pred, gt) == pytest.approx(130 / 225)
    # One 10x20 prediction covering two 10x10 GTs: both pick it (IoU 0.5 each), Kumar counts it twice:
    # C = 100 + 100, U = 200 + 200 -> 0.5
    assert aji(boxes([(0, 0, 10, 20)]), boxes([(0, 0, 10, 10), (0, 10, 10, 20)])) == pytest.approx(0.5)
    # A GT with no overlapping prediction adds only its own area: C = 80, U = 100 + 100 -> 0.4
    assert aji(boxes([(0, 0, 10, 8)]), gt) == pytest.approx(0.4)


def test_dice2_hand_case():
    gt = boxes(GT2)
    # p1 (10x8) inside g1: 2 * 80 / (80 + 100); p2 (10x15) over g2 (10x10) and 50 px of nothing:
    # 2 * 100 / (150 + 100); pooled over both overlapping pairs: 2 (80 + 100) / (180 + 250)
    pred = boxes([(0, 0, 10, 8), (20, 20, 30, 35)])
    assert dice2(pred, gt) == pytest.approx(360 / 430)
    # A prediction that touches nothing adds nothing; perfect masks give 1; none vs some gives 0.
    assert dice2(boxes([(0, 0, 10, 8), (45, 45, 50, 50)]), gt) == pytest.approx(160 / 180)
    assert dice2(gt, gt) == pytest.approx(1.0)
    assert dice2(boxes([]), gt) == 0.0
    assert dice2(boxes([]), boxes([])) == 1.0
    assert dice2(boxes([(45, 45, 50, 50)]), gt) == 0.0  # both sides have cells, none overlap


def test_panoptic_quality_hand_case():
    gt = boxes(GT2 + [(40, 40, 50, 50)])
    pred = boxes(PRED2 + [(45, 0, 55, 10)])
    # TP 2 (IoU 0.8, 0.6), FP 1, FN 1: SQ = 1.4/2 = 0.7, RQ = 2 / (2 + 0.5 + 0.5) = 2/3, PQ = 0.7 * 2/3
    res = panoptic_quality(pred, gt)
    assert res["SQ"] == pytest.approx(0.7) and res["RQ"] == pytest.approx(2 / 3)
    assert res["PQ"] == pytest.approx(0.7 * 2 / 3)
    # Kirillov needs IoU > 0.5: a 10x5 prediction (IoU exactly 0.5) is no match -> TP 0, RQ 0, SQ 0
    assert panoptic_quality(boxes([(0, 0, 10, 5)]), boxes([(0, 0, 10, 10)])) == {"PQ": 0.0, "SQ": 0.0, "RQ": 0.0}


def test_coco_ap_score_order_matters():
    gt = boxes(GT2)
    exact = [(0, 0, 10, 10), (20, 20, 30, 30)]
    fp = (45, 45, 55, 55)
    # Ranked TP (0.9), FP (0.8), TP (0.7): recall .5 .5 1, precision 1 .5 .667 -> envelope 1 .667 .667.
    # 101 recall points: r = 0.00..0.50 (51 points) -> 1; r = 0.51..1.00 (50 points) -> 2/3.
    # AP = (51 + 50 * 2/3) / 101 = 253/303 at every IoU threshold (the TPs have IoU 1).
    res = coco_ap([boxes([exact[0], fp, exact[1]], scores=[0.9, 0.8, 0.7])], [gt])
    for key in ("AP", "AP50", "AP75"):
        assert res[key] == pytest.approx(253 / 303, rel=1e-12), key
    assert res["AR100"] == pytest.approx(1.0)
    # Same detections with the FP ranked last: precision 1 1 .667 -> envelope 1 at all recalls -> AP 1.
    res = coco_ap([boxes([exact[0], fp, exact[1]], scores=[0.9, 0.1, 0.7])], [gt])
    assert res["AP"] == pytest.approx(1.0)


def test_coco_ap_ranks_across_images_and_iou():
    # Image 1: TP at 0.9. Image 2: FP at 0.95 and TP at 0.5. Global order FP, TP, TP:
    # recall 0 .5 1, precision 0 .5 .667 -> envelope .667 everywhere -> AP 2/3.
    one = boxes([(0, 0, 10, 10)])
    res = coco_ap(
        [boxes([(0, 0, 10, 10)], scores=[0.9]), boxes([(45, 45, 55, 55), (0, 0, 10, 10)], scores=[0.95, 0.5])],
        [one, one],
    )
    assert res["AP"] == pytest.approx(2 / 3, rel=1e-12)
    # One detection at IoU 0.6 (10x6 in 10x10): matched at .50 .55 .60, missed above.
    res = coco_ap([boxes([(0, 0, 10, 6)])], [one])
    assert res["AP50"] == pytest.approx(1.0) and res["AP75"] == 0.0
    assert res["AP"] == pytest.approx(0.3) and res["AR100"] == pytest.approx(0.3)


def test_coco_keeps_only_100_detections_per_image():
    one = boxes([(0, 0, 10, 10)])
    fps = [(50, 50, 55, 55)] * 100
    # 100 FPs with higher scores push the only TP to rank 101, where it is dropped.
    dets = boxes(fps + [(0, 0, 10, 10)], scores=list(np.linspace(0.9, 0.5, 100)) + [0.1])
    assert coco_ap([dets], [one])["AR100"] == 0.0
    # With 99 FPs the TP is the 100th detection: recalled, precision 1/100 at recall 1 -> AP 0.01.
    dets = boxes(fps[:99] + [(0, 0, 10, 10)], scores=list(np.linspace(0.9, 0.5, 99)) + [0.1])
    res = coco_ap([dets], [one])
    assert res["AR100"] == 1.0 and res["AP"] == pytest.approx(0.01)


def test_occlusion_recall_two_layers():
    # Front F (0,0,20,20) depth 0: rate 0 -> none.
    # P (15,0,35,20) depth 1: 400 px, 100 behind F -> 0.25 -> partial (bin includes 0.25).
    # H (0,10,10,30) depth 1: 200 px, 100 behind F -> 0.5 -> heavy.
    # N (40,40,50,50) depth 0, isolated -> none.
    gt = boxes([(0, 0, 20, 20), (15, 0, 35, 20), (0, 10, 10, 30), (40, 40, 50, 50)], depth=[0, 1, 1, 0])
    np.testing.assert_allclose(gt.occlusion_rates(), [0, 0.25, 0.5, 0])
    # Predict F and P exactly, H only by its visible 10x10 part (IoU 100/200 = 0.5), miss N.
    pred = boxes([(0, 0, 20, 20), (15, 0, 35, 20), (0, 20, 10, 30)], scores=[0.9, 0.8, 0.7])
    res = occlusion_recall([pred], [gt], 0.5)
    assert res == {"AR_none": 0.5, "AR_partial": 1.0, "AR_heavy": 1.0}
    res = occlusion_recall([pred], [gt], 0.75)
    assert res == {"AR_none": 0.5, "AR_partial": 1.0, "AR_heavy": 0.0}
    # Pooled over images; an image of unoccluded cells leaves the heavy bin empty -> NaN.
    res = occlusion_recall([pred, Instances.empty(SHAPE)], [gt, boxes([(0, 0, 5, 5)])])
    assert res["AR_none"] == pytest.approx(1 / 3) and res["AR_heavy"] == 1.0
    assert np.isnan(occlusion_recall([pred], [boxes([(0, 0, 5, 5)])])["AR_heavy"])


def test_evaluate_pooled_vs_mean_and_area_error():
    # Image 1: PRED2 on GT2 (IoU 0.8, 0.6; areas 80, 60 vs 100 -> errors 0.2, 0.4).
    # Image 2: three GTs, no prediction.
    gt_b = boxes([(0, 0, 10, 10), (20, 0, 30, 10), (40, 0, 50, 10)])
    res = evaluate([boxes(PRED2, scores=[0.9, 0.8]), Instances.empty(SHAPE)], [boxes(GT2), gt_b])
    assert (res["n_images"], res["n_gt"], res["n_pred"]) == (2, 5, 2)
    # @0.5: image 1 -> 1, image 2 -> 0; mean 0.5; pooled 2 / (2 + 0 + 3) = 0.4
    assert res["AP_dsb@0.50"] == pytest.approx(0.5) and res["AP_dsb@0.50_pooled"] == pytest.approx(0.4)
    # @0.75: image 1 -> 1/3, image 2 -> 0; mean 1/6; pooled 1 / (1 + 1 + 4) = 1/6
    assert res["AP_dsb@0.75"] == pytest.approx(1 / 6) and res["AP_dsb@0.75_pooled"] == pytest.approx(1 / 6)
    # mAP: image 1 -> 13/30 (see above), image 2 -> 0
    assert res["mAP"] == pytest.approx(13 / 60)
    # AJI: image 1 -> (80 + 60) / 200 = 0.7, image 2 -> 0
    assert res["AJI"] == pytest.approx(0.35)
    # PQ pooled: TP 2 (IoU 1.4), FP 0, FN 3 -> SQ 0.7, RQ 2 / 3.5
    assert res["SQ"] == pytest.approx(0.7) and res["RQ"] == pytest.approx(2 / 3.5)
    assert res["area_error_median"] == pytest.approx(0.3)
    # COCO @0.5: ranked TP, TP with 5 GTs -> recall .2 .4, precision 1 -> 41 points of 101
    assert res["AP50"] == pytest.approx(41 / 101)
    assert res["AR_none"] == pytest.approx(2 / 5) and np.isnan(res["AR_heavy"])


def test_coco_greedy_matching_follows_score_not_iou():
    # One GT; B (IoU 0.9, score 0.3) is listed before A (IoU 0.6, score 0.9).
    # @0.50 A, ranked first, takes the GT and B becomes an FP: ranked TP, FP -> AP50 = 1.
    # @0.75 A cannot match, B takes the GT: ranked FP, TP -> precision .5 at recall 1 -> AP75 = 0.5.
    dets = boxes([(0, 0, 10, 9), (0, 0, 10, 6)], scores=[0.3, 0.9])
    res = coco_ap([dets], [boxes([(0, 0, 10, 10)])])
    assert res["AP50"] == pytest.approx(1.0) and res["AP75"] == pytest.approx(0.5)
    # Hungarian (DSB) matching ignores scores and keeps the better pair, B (IoU 0.9).
    p, g, ious = match(dets, boxes([(0, 0, 10, 10)]), 0.5)
    assert p.tolist() == [0] and ious.tolist() == pytest.approx([0.9])
