"""The fine-tuning metrics give the numbers the paper's scripts would give on hand-checked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core_model.finetune import metrics as M


def test_binary_f1_matches_hand_count():
    t = [1, 1, 1, 0, 0, 0, 1, 0]
    p = [1, 0, 1, 1, 0, 0, 1, 0]
    s = M.binary_scores(t, p)
    assert (s.tp, s.fp, s.fn, s.tn) == (3, 1, 1, 3)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.75)
    assert s.f1 == pytest.approx(0.75)
    assert s.accuracy == pytest.approx(0.75)


def test_binary_f1_is_zero_when_nothing_positive_predicted():
    s = M.binary_scores([1, 1, 0], [0, 0, 0])
    assert s.f1 == 0.0 and s.precision == 0.0 and s.recall == 0.0


def test_classification_metrics_two_classes_uses_positive_class_and_multi_uses_macro():
    m = M.classification_metrics([0, 1, 1, 0], [0, 1, 0, 0], ["normal", "abnormal"])
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(0.5)
    m3 = M.classification_metrics([0, 1, 2, 2], [0, 1, 2, 1], ["a", "b", "c"])
    assert m3["f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]))


def test_dice_paper_empty_rules():
    z = np.zeros((4, 4), bool)
    o = z.copy()
    o[:2, :2] = True
    assert M.dice(z, z, "paper") == 0.0  # empty prediction -> 0 even on empty truth
    assert M.dice(o, z, "paper") == 1.0  # prediction on empty truth -> 1 (TransUNet quirk)
    assert M.dice(z, o, "paper") == 0.0
    assert M.dice(z, z, "strict") == 1.0
    assert M.dice(o, z, "strict") == 0.0
    half = z.copy()
    half[:1, :2] = True
    assert M.dice(half, o) == pytest.approx(2 * 2 / (2 + 4))
    with pytest.raises(ValueError, match="shape"):
        M.dice(z, np.zeros((3, 3), bool))


def test_sequence_dice_is_volume_dice_not_mean_of_frames():
    gt = np.zeros((2, 4, 4), bool)
    gt[0, :2, :2] = True  # 4 px
    gt[1] = True  # 16 px
    pred = np.zeros_like(gt)
    pred[1] = True
    m = M.segmentation_metrics([(pred, gt)])
    assert m["dice_seq"] == pytest.approx(2 * 16 / (16 + 20))
    assert m["dice_frame"] == pytest.approx(0.5)  # frame 0 has empty prediction -> 0, frame 1 -> 1


def test_frame_level_detection_ignores_iou_like_the_paper():
    far = [0.0, 0.0, 1.0, 1.0]
    frames = [
        M.FrameDetections(
            gt=[(1, "polyp", [50, 50, 60, 60])], pred=[("polyp", 0.9, far)]
        ),  # TP without overlap
        M.FrameDetections(gt=[(1, "polyp", [50, 50, 60, 60])], pred=[("polyp", 0.4, far)]),  # FN (below 0.5)
        M.FrameDetections(gt=[], pred=[("polyp", 0.5, far)]),  # FP (>= 0.5 counts)
        M.FrameDetections(gt=[], pred=[]),  # TN
    ]
    s = M.frame_detection_scores(frames)
    assert (s["tp"], s["fn"], s["fp"], s["tn"]) == (1, 1, 1, 1)
    assert s["f1"] == pytest.approx(0.5, abs=1e-6)


def test_box_ap_perfect_and_with_a_false_positive_ranked_first():
    gt_box = [10, 10, 20, 20]
    perfect = [M.FrameDetections(gt=[(1, "polyp", gt_box)], pred=[("polyp", 0.9, gt_box)]) for _ in range(3)]
    assert M.box_ap(perfect)["map50"] == pytest.approx(1.0)
    frames = [
        M.FrameDetections(
            gt=[(1, "polyp", gt_box)], pred=[("polyp", 0.99, [30, 30, 40, 40]), ("polyp", 0.5, gt_box)]
        )
    ]
    # ranked: FP then TP -> precision at recall 1 is 0.5
    assert M.box_ap(frames)["map50"] == pytest.approx(0.5)
    # a duplicate detection of the same object is a false positive
    dup = [
        M.FrameDetections(gt=[(1, "polyp", gt_box)], pred=[("polyp", 0.9, gt_box), ("polyp", 0.8, gt_box)])
    ]
    assert M.box_ap(dup)["map50"] == pytest.approx(1.0)
    assert M.box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0, 0] == pytest.approx(50 / 150)


def test_lesion_sensitivity_and_delay():
    box = [10, 10, 30, 30]
    frames = []
    for i in range(10):
        gt = [(1, "polyp", box)] if 2 <= i < 8 else []
        if 5 <= i < 6:
            gt.append((2, "polyp", [60, 60, 70, 70]))
        pred = [("polyp", 0.9, box)] if i >= 4 else []
        frames.append(M.FrameDetections(gt=gt, pred=pred))
    res = M.lesion_results("v", frames, fps=2.0)
    by = {r.track_id: r for r in res}
    assert by[1].first_frame == 2 and by[1].first_detected == 4 and by[1].delay_s == pytest.approx(1.0)
    assert not by[2].detected  # a confident box elsewhere does not count with IoU matching
    m = M.lesion_metrics(res)
    assert m["lesion_sensitivity"] == pytest.approx(0.5)
    assert m["delay_median_s"] == pytest.approx(1.0)
    res_any = M.lesion_results("v", frames, fps=2.0, iou_thr=0.0)
    assert all(r.detected for r in res_any)
    assert math.isnan(M.lesion_metrics([])["delay_mean_s"])


def test_mask_to_boxes_exclusive_corners():
    m = np.zeros((8, 8), np.uint8)
    m[2:4, 3:7] = 5
    assert M.mask_to_boxes(m) == [(5, [3.0, 2.0, 7.0, 4.0])]
