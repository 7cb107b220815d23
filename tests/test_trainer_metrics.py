"""trainer/metrics.py and trainer/metrics_coco.py: hand-computed cases, then agreement.

COCO numbers are checked against pycocotools (1e-6) on a seeded synthetic set and on voc2012-sample's
files; VOC numbers against the classic voc_eval.py logic written out below (1e-9).
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from trainer.metrics import (FN, FP, IGNORED, TP, EvalData, confusion_matrix, evaluate_voc, match_dataset,
                             match_detections, mislabelled_detections, voc_ap_11point, voc_ap_all_point, voc_map50)
from trainer.metrics_coco import evaluate_coco, evaluate_size_bins

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
VOC_SAMPLE = SHARED_DATA / "voc2012-sample"
COCO_TOLERANCE = 1e-6
VOC_TOLERANCE = 1e-9

# One class, three 10x10 ground truths and four detections with hand-placed IoUs:
#   d0 0.9 on A, IoU 1 -> TP;  d1 0.8 on B, IoU 0.88 -> TP;  d2 0.7 on A again, IoU 0.88 -> FP (duplicate);
#   d3 0.6 on C, IoU 0.62 -> TP.   tp 1 2 2 3, fp 0 0 1 1: precision 1 1 2/3 3/4, recall 1/3 2/3 2/3 1.
GT = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10]]
DETS = [[0, 0, 10, 10], [21.2, 0, 30, 10], [0, 0, 10, 8.8], [40, 0, 46.2, 10]]
SCORES = [0.9, 0.8, 0.7, 0.6]


def one_image(gt=GT, dets=DETS, scores=SCORES, gt_labels=None, det_labels=None, **gt_extra):
    gt_labels = ["logo"] * len(gt) if gt_labels is None else gt_labels
    det_labels = ["logo"] * len(dets) if det_labels is None else det_labels
    return EvalData.from_images([dict(boxes=gt, labels=gt_labels, **gt_extra)],
                                [dict(boxes=dets, scores=scores, labels=det_labels)],
                                image_sizes=[(100, 100)])


# ---------------------------------------------------------------- hand-computed

def test_hand_case_tp_fp_precision_recall_and_both_voc_aps():
    matches = match_detections(GT, ["logo"] * 3, DETS, SCORES, ["logo"] * 4)
    assert matches.det_status.tolist() == [TP, TP, FP, TP]
    assert matches.det_gt.tolist() == [0, 1, -1, 2]
    np.testing.assert_allclose(matches.det_iou, [1.0, 0.88, 0.0, 0.62])
    np.testing.assert_allclose(matches.det_best_iou, [1.0, 0.88, 0.88, 0.62])
    assert matches.gt_status.tolist() == [TP, TP, TP] and matches.gt_det.tolist() == [0, 1, 3]
    voc = evaluate_voc(one_image())
    np.testing.assert_allclose(voc.precision[0], [1, 1, 2 / 3, 3 / 4])
    np.testing.assert_allclose(voc.recall[0], [1 / 3, 2 / 3, 2 / 3, 1])
    # all-point: 1/3 * 1 + 1/3 * 1 + 1/3 * 3/4;  11-point: t = 0..0.6 -> 1 (7 points), 0.7..1 -> 3/4 (4)
    assert voc.ap_all_point[0] == pytest.approx(1 / 3 + 1 / 3 + 0.25, abs=1e-12)
    assert voc.ap_11point[0] == pytest.approx((7 + 4 * 0.75) / 11, abs=1e-12)
    assert voc.mean_ap_all_point == pytest.approx(11 / 12)


def test_hand_case_coco_ap():
    # recall points <= 2/3 (67 of 101) read precision 1, the 34 above read 3/4, at IoU .5 .55 .6;
    # at .65 - .85 d3 (IoU .62) misses: 67 / 101; at .9 and .95 only d0 (IoU 1) is a TP: 34 / 101
    coco = evaluate_coco(one_image())
    assert coco.stats["AP50"] == pytest.approx((67 + 34 * 0.75) / 101, abs=1e-12)
    assert coco.stats["AP"] == pytest.approx((3 * 92.5 + 5 * 67 + 2 * 34) / 1010, abs=1e-12)
    assert coco.stats["AR1"] == pytest.approx(1 / 3, abs=1e-12)  # one detection per image and class: d0
    assert coco.stats["AP_medium"] == -1.0  # every box is 10x10: small; no class has medium ground truth
    assert coco.per_class["AP50"][0] == pytest.approx(coco.stats["AP50"])


def test_voc_map50_takes_detections_then_ground_truth():
    detections = [dict(boxes=np.array(DETS), scores=np.array(SCORES), labels=np.array([1, 1, 1, 1]))]
    ground_truths = [dict(boxes=np.array(GT, dtype=np.float32), labels=np.array([1, 1, 1]))]
    assert voc_map50(detections, ground_truths) == pytest.approx(11 / 12)
    assert voc_map50(detections, ground_truths, use_07_metric=True) == pytest.approx(10 / 11)
    assert np.isnan(voc_map50([dict(boxes=np.zeros((0, 4)), scores=[], labels=[])],
                              [dict(boxes=np.zeros((0, 4)), labels=[])]))


def test_voc_ap_functions_on_empty_and_perfect_curves():
    assert voc_ap_11point(np.zeros(0), np.zeros(0)) == 0.0
    assert voc_ap_all_point(np.zeros(0), np.zeros(0)) == 0.0
    assert voc_ap_11point(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    assert voc_ap_all_point(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)


def test_difficult_ground_truth_is_neither_counted_nor_penalised():
    gt = GT + [[60, 0, 70, 10]]
    dets = DETS + [[60, 0, 70, 10], [60, 0, 64, 10]]  # on the difficult box: IoU 1, then IoU 0.4
    data = one_image(gt, dets, SCORES + [0.95, 0.5], difficult=[False, False, False, True])
    voc = evaluate_voc(data)
    assert voc.num_positives.tolist() == [3]
    assert voc.ap_all_point[0] == pytest.approx(11 / 12)  # unchanged: the match on it is ignored...
    matches = match_dataset(data, rule="voc")
    assert matches.det_status.tolist() == [TP, TP, FP, TP, IGNORED, FP]  # ...the IoU-0.4 one is an FP
    assert matches.gt_status.tolist() == [TP, TP, TP, IGNORED]


def test_difficult_object_twice_detected_voc_ignores_both_coco_only_the_first():
    # COCO has no "difficult": it is ignored like a crowd, but (not being a crowd) absorbs one detection
    dets, scores, flags = [[60, 0, 70, 10], [60, 0, 70, 9]], [0.9, 0.8], [True]
    voc = match_detections([[60, 0, 70, 10]], [0], dets, scores, [0, 0], gt_difficult=flags, rule="voc")
    coco = match_detections([[60, 0, 70, 10]], [0], dets, scores, [0, 0], gt_difficult=flags, rule="coco")
    assert voc.det_status.tolist() == [IGNORED, IGNORED]
    assert coco.det_status.tolist() == [IGNORED, FP]


def test_voc_and_coco_rules_differ_on_a_taken_best_match():
    # d1's best ground truth (A, IoU .9) is taken by d0; it also overlaps B at IoU .6.
    gt, dets = [[0, 0, 10, 10], [2, 0, 12, 10]], [[0, 0, 10, 10], [0, 0, 10, 9]]
    # IoU(d1, A) = 90/100; IoU(d1, B) = 72 / 118
    voc = match_detections(gt, [1, 1], dets, [0.9, 0.8], [1, 1], rule="voc")
    coco = match_detections(gt, [1, 1], dets, [0.9, 0.8], [1, 1], rule="coco")
    assert voc.det_status.tolist() == [TP, FP] and voc.gt_status.tolist() == [TP, FN]
    assert coco.det_status.tolist() == [TP, TP] and coco.det_gt.tolist() == [0, 1]


def test_voc_threshold_is_strict_and_coco_inclusive():
    gt, det = [[0, 0, 10, 10]], [[0, 0, 10, 5]]  # IoU exactly 0.5
    assert match_detections(gt, [0], det, [1.0], [0], rule="voc").det_status.tolist() == [FP]
    assert match_detections(gt, [0], det, [1.0], [0], rule="coco").det_status.tolist() == [TP]


def test_coco_equal_iou_goes_to_the_later_ground_truth_and_classes_never_mix():
    gt = [[0, 0, 10, 10], [5, 0, 15, 10], [5, 0, 15, 10]]
    det = [[2.5, 0, 12.5, 10], [5, 0, 15, 10]]
    matches = match_detections(gt, ["a", "a", "b"], det, [0.9, 0.8], ["a", "b"])
    assert matches.det_gt.tolist() == [1, 2]  # IoU 0.6 with both "a" boxes: the later one


def test_crowd_region_absorbs_detections_without_penalty():
    crowd = [[0, 50, 100, 100]]
    dets = [[10, 60, 20, 70], [30, 60, 40, 70], [50, 55, 90, 95]]
    matches = match_detections(GT + crowd, [0] * 4, DETS + dets, SCORES + [0.95, 0.85, 0.65], [0] * 7,
                               gt_crowd=[0, 0, 0, 1])
    assert matches.det_status.tolist() == [TP, TP, FP, TP, IGNORED, IGNORED, IGNORED]
    assert matches.det_gt.tolist()[4:] == [3, 3, 3]  # IoU with a crowd = intersection / detection area = 1
    assert matches.gt_status.tolist() == [TP, TP, TP, IGNORED] and matches.gt_det[3] == 4
    data = one_image(GT + crowd, DETS + dets, SCORES + [0.95, 0.85, 0.65], iscrowd=[0, 0, 0, 1])
    assert evaluate_coco(data).stats["AP50"] == pytest.approx((67 + 34 * 0.75) / 101)
    assert agree_with_pycocotools(data)


def test_area_range_and_max_dets_ignore_rather_than_penalise():
    dets, scores = DETS + [[80, 80, 99, 99]], SCORES + [0.1]
    in_range = match_detections(GT, [0] * 3, dets, scores, [0] * 5, area_range=(0, 150))
    assert in_range.det_status.tolist() == [TP, TP, FP, TP, IGNORED]  # unmatched, area 361: out of range
    capped = match_detections(GT, [0] * 3, dets, scores, [0] * 5, max_dets=3)
    assert capped.det_status.tolist() == [TP, TP, FP, IGNORED, IGNORED]  # 4th and 5th by score: not used
    assert capped.gt_status.tolist() == [TP, TP, FN]


def test_counts_per_image_and_empty_inputs():
    data = EvalData.from_images([dict(boxes=GT, labels=[0] * 3), dict(boxes=[], labels=[])],
                                [dict(boxes=DETS, scores=SCORES, labels=[0] * 4),
                                 dict(boxes=[[1, 1, 5, 5]], scores=[0.3], labels=[0])])
    matches = match_dataset(data)
    tp, fp, fn = matches.counts_per_image(data.det_image, data.gt_image, data.num_images)
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([3, 0], [1, 1], [0, 0])
    empty = EvalData.from_images([dict(boxes=[], labels=[])], [dict(boxes=[], scores=[], labels=[])])
    assert empty.classes == () and evaluate_coco(empty).stats["AP"] == -1.0
    assert np.isnan(evaluate_voc(empty).mean_ap_all_point)


def test_confusion_matrix_by_hand():
    # cat (0,0,10,10) found as cat; dog (20,0,30,10) found as cat (mislabelled); dog (40,...) missed;
    # a spurious dog; a low-score cat below the threshold; a right cat that a wrong, higher-scored
    # dog detection also overlaps: the cat detection still gets it (same class first).
    gt = [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]]
    gt_labels = ["cat", "dog", "dog", "cat"]
    dets = [[0, 0, 10, 10], [20, 0, 30, 10], [80, 80, 90, 90], [40, 0, 50, 10], [60, 0, 70, 10],
            [60, 0, 70, 10]]
    scores = [0.9, 0.8, 0.7, 0.2, 0.95, 0.6]
    labels = ["cat", "cat", "dog", "dog", "dog", "cat"]
    result = confusion_matrix(one_image(gt, dets, scores, gt_labels, labels), score_threshold=0.5)
    assert result.labels == ("cat", "dog", "background")
    assert result.matrix.tolist() == [[2, 0, 0],   # cat: found twice
                                      [1, 0, 1],   # dog: once taken for a cat, once missed
                                      [0, 2, 0]]   # spurious: the dog far away, the dog on the cat
    assert (result.mislabelled, result.spurious, result.missed, result.wrong) == (1, 2, 1, 3)


def test_size_bins_by_fraction_of_image_area():
    gt = [[0, 0, 10, 10], [0, 0, 50, 50], [50, 50, 100, 100]]  # 1 %, 25 %, 25 % of a 100x100 image
    dets = [[0, 0, 10, 10], [0, 0, 50, 50], [0, 60, 40, 100]]  # last: spurious, 16 % -> bin 10-20 %
    bins = evaluate_size_bins(one_image(gt, dets, [0.9, 0.8, 0.7], [0] * 3, [0] * 3))
    assert bins.labels == ("0-5%", "5-10%", "10-20%", "20-40%", "40-60%", "60-80%", "80-100%")
    assert bins.num_gt.tolist() == [1, 0, 0, 2, 0, 0, 0]
    np.testing.assert_allclose(bins.recall, [1, np.nan, np.nan, 0.5, np.nan, np.nan, np.nan])
    assert bins.ap[0] == pytest.approx(1.0) and bins.ap[3] == pytest.approx(51 / 101)
    with pytest.raises(ValueError, match="image sizes"):
        evaluate_size_bins(EvalData.from_images([dict(boxes=gt, labels=[0] * 3)],
                                                [dict(boxes=[], scores=[], labels=[])]))


@pytest.mark.parametrize("change, message", [
    (dict(gt=[[10, 0, 0, 10]]), "x1 < x0"),
    (dict(gt=[[0, 0, 10]]), r"\[N, 4\]"),
    (dict(det_labels=["cat"] * 4, gt_labels=[1, 1, 1]), "mix numbers and strings"),
    (dict(scores=[0.9, np.nan, 0.7, 0.6]), "finite"),
])
def test_bad_input_is_rejected_with_a_reason(change, message):
    gt = change.get("gt", GT)
    with pytest.raises(ValueError, match=message):
        one_image(gt, DETS, change.get("scores", SCORES), change.get("gt_labels", [0] * len(gt)),
                  change.get("det_labels", [0] * 4))


def test_unknown_label_with_explicit_classes_is_an_error():
    with pytest.raises(ValueError, match="not in classes"):
        EvalData.from_images([dict(boxes=GT, labels=["a"] * 3)],
                             [dict(boxes=DETS, scores=SCORES, labels=["a", "a", "b", "a"])], classes=["a"])


def test_metrics_modules_import_neither_fiftyone_nor_torch():
    code = ("import sys, trainer.metrics, trainer.metrics_coco; "
            "print(sorted(m for m in ('fiftyone', 'pymongo', 'torch', 'pycocotools') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- references

def reference_voc_ap(gt, dets, classname, ovthresh=0.5, use_07_metric=False):
    """voc_eval.py (py-faster-rcnn's port of the VOC devkit), on 1-based pixel indices with its "+1".

    ``gt``: {image: [(name, difficult, box)]}; ``dets``: [(image, name, score, box)] in file order. The
    sort is stable, as the devkit's MATLAB sort (voc_eval.py's default quicksort is not).
    """
    recs, npos = {}, 0
    for image, objects in gt.items():
        mine = [o for o in objects if o[0] == classname]
        difficult = np.array([o[1] for o in mine], dtype=bool)
        recs[image] = {"bbox": np.array([o[2] for o in mine], dtype=float).reshape(-1, 4),
                       "difficult": difficult, "det": [False] * len(mine)}
        npos += int((~difficult).sum())
    lines = [d for d in dets if d[1] == classname]
    if npos == 0:
        return float("nan")
    order = np.argsort(-np.array([d[2] for d in lines]), kind="stable")
    tp, fp = np.zeros(len(lines)), np.zeros(len(lines))
    for d, index in enumerate(order):
        rec, bb = recs[lines[index][0]], np.asarray(lines[index][3], dtype=float)
        ovmax, bbgt = -np.inf, rec["bbox"]
        if bbgt.size > 0:
            iw = np.maximum(np.minimum(bbgt[:, 2], bb[2]) - np.maximum(bbgt[:, 0], bb[0]) + 1.0, 0.0)
            ih = np.maximum(np.minimum(bbgt[:, 3], bb[3]) - np.maximum(bbgt[:, 1], bb[1]) + 1.0, 0.0)
            inters = iw * ih
            uni = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                   + (bbgt[:, 2] - bbgt[:, 0] + 1.0) * (bbgt[:, 3] - bbgt[:, 1] + 1.0) - inters)
            overlaps = inters / uni
            ovmax, jmax = np.max(overlaps), np.argmax(overlaps)
        if ovmax > ovthresh:
            if not rec["difficult"][jmax]:
                if not rec["det"][jmax]:
                    tp[d], rec["det"][jmax] = 1.0, True
                else:
                    fp[d] = 1.0
        else:
            fp[d] = 1.0
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            p = 0 if np.sum(rec >= t) == 0 else np.max(prec[rec >= t])
            ap = ap + p / 11.0
        return ap
    mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = np.maximum(mpre[i - 1], mpre[i])
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])


def assert_voc_agrees(data: EvalData, *, iou_threshold=0.5):
    """Our VOC APs against the reference, giving it 1-based indices (edges x0 + 1, x1)."""
    def index_box(box):
        return [box[0] + 1, box[1] + 1, box[2], box[3]]

    gt = {i: [] for i in range(data.num_images)}
    for i, box, label, difficult in zip(data.gt_image, data.gt_boxes, data.gt_labels, data.gt_ignored):
        gt[int(i)].append((int(label), bool(difficult), index_box(box)))
    dets = [(int(i), int(label), float(s), index_box(box))
            for i, box, s, label in zip(data.det_image, data.det_boxes, data.det_scores, data.det_labels)]
    ours = evaluate_voc(data, iou_threshold=iou_threshold)
    for k in range(len(data.classes)):
        for use_07, mine in ((True, ours.ap_11point[k]), (False, ours.ap_all_point[k])):
            expected = reference_voc_ap(gt, dets, k, iou_threshold, use_07)
            if np.isnan(expected):
                assert np.isnan(mine)
            else:
                assert abs(mine - expected) <= VOC_TOLERANCE, (data.classes[k], use_07, mine, expected)
    return ours


def to_coco(data: EvalData):
    """The same boxes as pycocotools input (image ids 1.. in our image order, category = class index + 1)."""
    def xywh(box):
        return [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])]

    images = [{"id": i + 1} for i in range(data.num_images)]
    annotations = [{"id": n + 1, "image_id": int(i) + 1, "category_id": int(k) + 1, "bbox": xywh(b),
                    "area": float(a), "iscrowd": int(c)}
                   for n, (i, k, b, a, c) in enumerate(zip(data.gt_image, data.gt_labels, data.gt_boxes,
                                                           data.gt_area, data.gt_crowd))]
    results = [{"image_id": int(i) + 1, "category_id": int(k) + 1, "bbox": xywh(b), "score": float(s)}
               for i, k, b, s in zip(data.det_image, data.det_labels, data.det_boxes, data.det_scores)]
    categories = [{"id": k + 1, "name": str(name)} for k, name in enumerate(data.classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def pycocotools_eval(gt_json: dict, results: list):
    pytest.importorskip("pycocotools", reason="pycocotools is the reference (pip install '.[test]')")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = json.loads(json.dumps(gt_json))
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(json.loads(json.dumps(results))), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def agree_with_pycocotools(data: EvalData, gt_json=None, results=None) -> bool:
    if gt_json is None:
        gt_json, results = to_coco(data)
    reference = pycocotools_eval(gt_json, results)
    ours = evaluate_coco(data)
    np.testing.assert_allclose(ours.stats_array, reference.stats, rtol=0, atol=COCO_TOLERANCE)
    np.testing.assert_allclose(ours.precision, reference.eval["precision"], rtol=0, atol=COCO_TOLERANCE)
    np.testing.assert_allclose(ours.recall, reference.eval["recall"], rtol=0, atol=COCO_TOLERANCE)
    return True


# ---------------------------------------------------------------- agreement: synthetic

def synthetic(num_images=300, num_classes=6, *, seed=0, integer=False, difficult=False):
    """Jittered copies of the ground truth (some relabelled, some doubled), plus false positives;
    ``integer`` rounds boxes and scores so that IoU and score ties happen."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(num_images):
        count = int(rng.integers(0, 8))
        size = rng.uniform(4, 300, (count, 2))
        corner = rng.uniform(0, 1, (count, 2)) * ([640, 480] - size)
        boxes = np.c_[corner, corner + size]
        labels = rng.integers(0, num_classes, count)
        copies = rng.integers(0, 3, count)
        source = np.repeat(np.arange(count), copies)
        jitter = rng.normal(0, 0.08, (len(source), 4)) * np.sqrt(size[source].prod(axis=1))[:, None]
        moved = boxes[source] + jitter
        moved = np.c_[np.minimum(moved[:, :2], moved[:, 2:]), np.maximum(moved[:, :2], moved[:, 2:])]
        spurious = rng.integers(0, 4)
        size2 = rng.uniform(4, 200, (spurious, 2))
        corner2 = rng.uniform(0, 1, (spurious, 2)) * ([640, 480] - size2)
        det_boxes = np.r_[moved, np.c_[corner2, corner2 + size2]]
        det_labels = np.r_[np.where(rng.random(len(source)) < 0.9, labels[source],
                                    rng.integers(0, num_classes, len(source))),
                           rng.integers(0, num_classes, spurious)]
        scores = rng.random(len(det_boxes))
        if integer:
            boxes, det_boxes, scores = np.round(boxes), np.round(det_boxes), np.round(scores, 1)
        flags = rng.random(count) < 0.06
        gts.append({"boxes": boxes, "labels": labels, ("difficult" if difficult else "iscrowd"): flags})
        dets.append({"boxes": det_boxes, "scores": scores, "labels": det_labels})
    return EvalData.from_images(gts, dets, classes=range(num_classes), image_sizes=[(640, 480)] * num_images)


@pytest.mark.parametrize("integer", [False, True], ids=["float-boxes", "integer-boxes-and-score-ties"])
def test_coco_agrees_with_pycocotools_on_a_synthetic_set(integer):
    data = synthetic(integer=integer)
    assert data.gt_crowd.sum() > 10 and len(data.det_labels) > 1000
    assert agree_with_pycocotools(data)


def test_coco_agrees_with_pycocotools_with_many_detections_per_image():
    """Over 100 detections in an image and class: the cut to maxDets happens before matching."""
    rng = np.random.default_rng(3)
    corner = rng.uniform(0, 400, (150, 2))
    dets = np.c_[corner, corner + rng.uniform(20, 200, (150, 2))]
    data = one_image(dets[:40] + 3, dets, rng.random(150), [0] * 40, [0] * 150)
    assert agree_with_pycocotools(data)


@pytest.mark.parametrize("integer", [False, True], ids=["float-boxes", "integer-boxes-and-score-ties"])
def test_voc_agrees_with_the_reference_on_a_synthetic_set(integer):
    data = synthetic(integer=integer, difficult=True)
    assert data.gt_difficult.sum() > 10
    ours = assert_voc_agrees(data)
    assert 0.1 < ours.mean_ap_all_point < 0.9


def test_matching_agrees_with_pycocotools_per_box():
    """TP/FP per detection at IoU 0.5 equals pycocotools' dtMatches (area 'all', maxDets 100)."""
    data = synthetic(num_images=60, integer=True)
    reference = pycocotools_eval(*to_coco(data))
    matches = match_dataset(data, iou_threshold=0.5, max_dets=100)
    expected = np.full(len(data.det_labels), -9)
    for e in reference.evalImgs:
        if e is not None and e["aRng"] == [0, 1e5 ** 2]:
            ignored = e["dtIgnore"][0].astype(bool)
            status = np.where(ignored, IGNORED, np.where(e["dtMatches"][0] > 0, TP, FP))
            expected[np.array(e["dtIds"], dtype=int) - 1] = status
    assert (matches.det_status == expected).all()


def test_matching_does_not_depend_on_chunking(monkeypatch):
    import trainer.metrics_match as engine

    data = synthetic(num_images=80, seed=5)
    before = match_dataset(data)
    monkeypatch.setattr(engine, "_CHUNK_CELLS", 7)
    monkeypatch.setattr(engine, "_CHUNK_LANE_CELLS", 7)
    after = match_dataset(data)
    assert (before.det_status == after.det_status).all() and (before.det_gt == after.det_gt).all()


def test_confusion_diagonal_equals_true_positives():
    data = synthetic(num_images=100, seed=2)
    result = confusion_matrix(data, score_threshold=0.3)
    keep = data.det_scores >= 0.3
    matches = match_dataset(EvalData.from_arrays(
        num_images=data.num_images, gt_image=data.gt_image, gt_boxes=data.gt_boxes, gt_labels=data.gt_labels,
        gt_crowd=data.gt_crowd, det_image=data.det_image[keep], det_boxes=data.det_boxes[keep],
        det_scores=data.det_scores[keep], det_labels=data.det_labels[keep], classes=data.classes))
    assert result.correct == int((matches.det_status == TP).sum())
    assert result.matrix[:-1].sum() == int((~data.gt_ignored).sum())  # every counted ground truth once
    assert result.correct + result.wrong == int((matches.det_status != IGNORED).sum())



def test_mislabelled_detections_are_the_off_diagonal_of_the_confusion_matrix():
    data = synthetic(num_images=100, seed=3)
    result = confusion_matrix(data, score_threshold=0.3)
    landed_on = mislabelled_detections(data, score_threshold=0.3)
    marked = np.flatnonzero(landed_on >= 0)
    off_diagonal = result.matrix[:-1, :-1].sum() - np.trace(result.matrix[:-1, :-1])
    assert len(marked) == off_diagonal > 0
    assert np.all(data.det_scores[marked] >= 0.3)
    assert np.all(data.gt_labels[landed_on[marked]] != data.det_labels[marked])
    assert np.all(data.det_image[marked] == data.gt_image[landed_on[marked]])


# ---------------------------------------------------------------- agreement: voc2012-sample

def sample_or_skip() -> Path:
    if not VOC_SAMPLE.is_dir():
        pytest.skip(f"real dataset not found at {VOC_SAMPLE} (../shared/data is not on this machine)")
    return VOC_SAMPLE


def read_voc_sample(with_difficult: bool) -> EvalData:
    """voc2012-sample: Pascal VOC XML ground truth, detections in dets/abs_xyx2y2 (class index into
    voc.names, score, corners). Both are read as VOC 1-based pixel indices: edges (x - 1, y - 1, x2, y2)."""
    base = sample_or_skip() / "data" / "database"
    names = (base / "voc.names").read_text().split()
    gts, dets, sizes = [], [], []
    for xml in sorted((base / "gts" / "pascalvoc_format").glob("*.xml")):
        root = ET.parse(xml).getroot()
        sizes.append((float(root.findtext("size/width")), float(root.findtext("size/height"))))
        objects = root.findall("object")
        boxes = [[float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
                 for o in objects]
        gts.append({"boxes": [[b[0] - 1, b[1] - 1, b[2], b[3]] for b in boxes],
                    "labels": [o.findtext("name") for o in objects],
                    "difficult": [with_difficult and o.findtext("difficult") == "1" for o in objects]})
        det_file = base / "dets" / "abs_xyx2y2" / f"{xml.stem}.txt"
        lines = det_file.read_text().splitlines() if det_file.exists() else []  # 2 images have no file
        rows = [line.split() for line in lines if line.strip()]
        dets.append({"boxes": [[float(r[2]) - 1, float(r[3]) - 1, float(r[4]), float(r[5])] for r in rows],
                     "scores": [float(r[1]) for r in rows], "labels": [names[int(r[0])] for r in rows]})
    return EvalData.from_images(gts, dets, classes=names, image_sizes=sizes)


@pytest.mark.realdata
def test_voc_sample_voc_ap_agrees_with_the_reference():
    data = read_voc_sample(with_difficult=True)
    assert data.num_images == 100 and data.gt_difficult.sum() > 0
    ours = assert_voc_agrees(data)
    print(f"voc2012-sample VOC mAP: 11-point {ours.mean_ap_11point:.6f}, "
          f"all-point {ours.mean_ap_all_point:.6f}")


@pytest.mark.realdata
def test_voc_sample_coco_agrees_with_pycocotools():
    assert agree_with_pycocotools(read_voc_sample(with_difficult=False))


def coco_files_to_data(gt_json: dict, results: list) -> EvalData:
    """A COCO ground-truth file and result list as EvalData: images in id order (as COCOeval), the
    ground truth's own ``area``, classes = category ids."""
    image_ids = sorted(image["id"] for image in gt_json["images"])
    index = {image_id: i for i, image_id in enumerate(image_ids)}

    def xyxy(box):
        return [box[0], box[1], box[0] + box[2], box[1] + box[3]]

    anns = gt_json["annotations"]
    return EvalData.from_arrays(
        num_images=len(image_ids), classes=sorted(c["id"] for c in gt_json["categories"]),
        gt_image=[index[a["image_id"]] for a in anns], gt_boxes=[xyxy(a["bbox"]) for a in anns],
        gt_labels=[a["category_id"] for a in anns], gt_crowd=[bool(a.get("iscrowd", 0)) for a in anns],
        gt_area=[a["area"] for a in anns], det_image=[index[r["image_id"]] for r in results],
        det_boxes=[xyxy(r["bbox"]) for r in results], det_scores=[r["score"] for r in results],
        det_labels=[r["category_id"] for r in results])


@pytest.mark.realdata
def test_voc_sample_shipped_coco_files_agree_with_pycocotools():
    """gts/coco_format_v2 with dets/coco_format, whose image and category ids differ: joined by file
    name and category name."""
    base = sample_or_skip() / "data" / "database"
    gt_json = json.loads((base / "gts" / "coco_format_v2" / "instances_v2.json").read_text())
    det_json = json.loads((base / "dets" / "coco_format" / "coco_dets.json").read_text())
    image_by_name = {image["file_name"]: image["id"] for image in gt_json["images"]}
    category_by_name = {c["name"]: c["id"] for c in gt_json["categories"]}
    det_image = {image["id"]: image_by_name[image["file_name"]] for image in det_json["images"]}
    det_category = {c["id"]: category_by_name[c["name"]] for c in det_json["categories"]}
    results = [{"image_id": det_image[d["image_id"]], "category_id": det_category[d["category_id"]],
                "bbox": d["bbox"], "score": d["score"]} for d in det_json["annotations"]]
    assert len(results) == 452
    assert agree_with_pycocotools(coco_files_to_data(gt_json, results), gt_json, results)


# What pycocotools gives on tests/test_coco_eval, as the dataset's upstream project records it
# (review_object_detection_metrics, tests/test_coco_eval.py, "obtained with coco's official implementation")
COCO_EVAL_CASE_OFFICIAL = {
    "AP": 0.503647, "AP50": 0.696973, "AP75": 0.571667, "AP_small": 0.593252, "AP_medium": 0.557991,
    "AP_large": 0.489363, "AR1": 0.386813, "AR10": 0.593680, "AR100": 0.595353, "AR_small": 0.654764,
    "AR_medium": 0.603130, "AR_large": 0.553744}


@pytest.mark.realdata
def test_voc_sample_coco_eval_case_agrees_with_pycocotools():
    """tests/test_coco_eval: 100 COCO val2014 images, 80 categories, 734 detections with tied scores.
    Its cocoapi_results.json holds the detections (a result list; dets/ holds the same wrapped as a
    dataset), not expected numbers: those are recorded upstream (above), and pycocotools runs here too."""
    case = sample_or_skip() / "tests" / "test_coco_eval"
    gt_json = json.loads((case / "gts" / "sampled_gts_bbox_area.json").read_text())
    results = json.loads((case / "cocoapi_results.json").read_text())
    data = coco_files_to_data(gt_json, results)
    stats = evaluate_coco(data).stats
    for name, expected in COCO_EVAL_CASE_OFFICIAL.items():
        assert abs(stats[name] - expected) < 5e-7, (name, stats[name], expected)  # recorded to 6 decimals
    assert agree_with_pycocotools(data, gt_json, results)
