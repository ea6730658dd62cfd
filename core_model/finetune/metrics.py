"""Metrics for fine-tuning and evaluation, computed the way the Endo-FM paper computes them, plus the clinically
meaningful per-lesion ones. Pure numpy; every score is a fraction in [0, 1] (the paper prints them x100).

* Classification: binary precision / recall / F1 for the positive class (``sklearn.metrics.f1_score`` default,
  zero when undefined), plus per-class and macro F1 for more than two classes (reference §5.1).
* Segmentation: Dice per sequence on the whole ``[T, H, W]`` volume with the TransUNet rules (prediction empty ->
  0; prediction non-empty and ground truth empty -> 1), and per frame with the same rules or the ``strict`` ones
  (both empty -> 1, exactly one empty -> 0) (reference §5.2).
* Detection: the STFT frame-level "Polyp Detection" F1 at score >= 0.5 with no IoU criterion, each of P, R and F1
  carrying the paper's +1e-7 (reference §5.3); box AP at IoU 0.5 (all-point interpolation, greedy matching by
  score, one ground truth matched at most once), averaged over classes that have ground truth.
* Per lesion (track id): sensitivity = share of lesions detected at least once; time from a lesion's first
  appearance to its first detection, in frames and seconds.

Boxes are ``[x0, y0, x1, y1]`` with exclusive x1/y1 (width = x1 - x0), as everywhere in the project.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinaryScores:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def accuracy(self) -> float:
        n = self.tp + self.fp + self.fn + self.tn
        return (self.tp + self.tn) / n if n else 0.0

    def as_dict(self) -> dict[str, float]:
        d = asdict(self)
        d["accuracy"] = self.accuracy
        return d


def _counts(truth: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    tp = int(np.sum(truth & pred))
    fp = int(np.sum(~truth & pred))
    fn = int(np.sum(truth & ~pred))
    tn = int(np.sum(~truth & ~pred))
    return tp, fp, fn, tn


def binary_scores(targets: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, positive: int = 1):
    """Binary precision/recall/F1 of class ``positive``, as ``sklearn.metrics.f1_score(targets, preds)`` (an
    undefined ratio counts as 0)."""
    t = np.asarray(targets).reshape(-1)
    p = np.asarray(preds).reshape(-1)
    if t.shape != p.shape:
        raise ValueError(f"targets and predictions differ in length: {t.shape[0]} vs {p.shape[0]}")
    tp, fp, fn, tn = _counts(t == positive, p == positive)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return BinaryScores(precision, recall, f1, tp, fp, fn, tn)


def classification_metrics(
    targets: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> dict[str, float]:
    """Metrics for a classification head over ``classes`` (index order). With two classes the headline ``f1`` is
    the paper's binary F1 of class index 1; otherwise it is the macro F1 over classes present in targets."""
    t = np.asarray(targets).reshape(-1)
    p = np.asarray(preds).reshape(-1)
    out: dict[str, float] = {"n": float(t.size), "accuracy": float(np.mean(t == p)) if t.size else 0.0}
    per_class = {}
    for k, name in enumerate(classes):
        s = binary_scores(t, p, positive=k)
        per_class[name] = s
        out[f"f1/{name}"] = s.f1
    present = [per_class[c].f1 for k, c in enumerate(classes) if np.any(t == k)]
    out["macro_f1"] = float(np.mean(present)) if present else 0.0
    if len(classes) == 2:
        pos = per_class[classes[1]]
        out.update(f1=pos.f1, precision=pos.precision, recall=pos.recall)
    else:
        out["f1"] = out["macro_f1"]
    return out


# ---------------------------------------------------------------------------------------------------------------
# segmentation
# ---------------------------------------------------------------------------------------------------------------


def _dice_raw(pred: np.ndarray, gt: np.ndarray) -> float:
    inter = np.count_nonzero(pred & gt)
    denom = np.count_nonzero(pred) + np.count_nonzero(gt)
    return 2.0 * inter / denom if denom else 1.0


def dice(pred: np.ndarray, gt: np.ndarray, empty_rule: str = "paper") -> float:
    """Dice of two binary arrays of the same shape.

    ``empty_rule="paper"`` (TransUNet ``calculate_metric_percase``): empty prediction -> 0 (even when the ground
    truth is empty too); non-empty prediction on empty ground truth -> 1. ``"strict"``: both empty -> 1, exactly
    one empty -> 0."""
    p = np.asarray(pred).astype(bool)
    g = np.asarray(gt).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction and ground-truth masks differ in shape: {p.shape} vs {g.shape}")
    p_any, g_any = bool(p.any()), bool(g.any())
    if empty_rule == "paper":
        if not p_any:
            return 0.0
        if not g_any:
            return 1.0
        return _dice_raw(p, g)
    if empty_rule == "strict":
        if not p_any and not g_any:
            return 1.0
        if p_any != g_any:
            return 0.0
        return _dice_raw(p, g)
    raise ValueError(f"unknown empty_rule {empty_rule!r} (use 'paper' or 'strict')")


def dice_per_frame(pred: np.ndarray, gt: np.ndarray, empty_rule: str = "paper") -> np.ndarray:
    """Dice of each frame of ``[T, H, W]`` arrays -> float ``[T]``."""
    p = np.asarray(pred).astype(bool)
    g = np.asarray(gt).astype(bool)
    if p.shape != g.shape or p.ndim != 3:
        raise ValueError(f"expected two [T, H, W] masks of the same shape, got {p.shape} and {g.shape}")
    return np.array([dice(p[i], g[i], empty_rule) for i in range(p.shape[0])], dtype=np.float64)


def segmentation_metrics(
    sequences: Iterable[tuple[np.ndarray, np.ndarray]],
) -> dict[str, float]:
    """``sequences``: (pred ``[T,H,W]``, gt ``[T,H,W]``) per held-out video or sequence.

    ``dice_seq``: mean over sequences of the volume Dice (paper rules, the CVC-12k number);
    ``dice_frame``: mean over all frames of per-frame Dice (paper rules);
    ``dice_frame_strict``: the same with both-empty frames counted as 1 (what a reviewer expects)."""
    seq, frame, strict = [], [], []
    for pred, gt in sequences:
        seq.append(dice(pred, gt, "paper"))
        frame.extend(dice_per_frame(pred, gt, "paper").tolist())
        strict.extend(dice_per_frame(pred, gt, "strict").tolist())
    return {
        "n_sequences": float(len(seq)),
        "dice_seq": float(np.mean(seq)) if seq else 0.0,
        "dice_frame": float(np.mean(frame)) if frame else 0.0,
        "dice_frame_strict": float(np.mean(strict)) if strict else 0.0,
    }


class SegmentationAccumulator:
    """:func:`segmentation_metrics` one frame at a time (``add(sequence, pred, gt)``), keeping only counts: the
    serving-path evaluation compares full-resolution masks, whose whole volumes would not fit in memory."""

    def __init__(self) -> None:
        self._vol: dict[str, list[int]] = {}  # sequence -> [intersection, pred pixels, gt pixels]
        self.frame: list[float] = []
        self.strict: list[float] = []

    def add(self, sequence: str, pred: np.ndarray, gt: np.ndarray) -> float:
        """Adds one frame; returns its strict Dice."""
        p, g = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
        v = self._vol.setdefault(sequence, [0, 0, 0])
        v[0] += int(np.count_nonzero(p & g))
        v[1] += int(np.count_nonzero(p))
        v[2] += int(np.count_nonzero(g))
        self.frame.append(dice(p, g, "paper"))
        self.strict.append(dice(p, g, "strict"))
        return self.strict[-1]

    def result(self) -> dict[str, float]:
        seq = []
        for inter, np_, ng in self._vol.values():  # the paper's volume rules, as dice(pred, gt, "paper")
            seq.append(0.0 if np_ == 0 else 1.0 if ng == 0 else 2.0 * inter / (np_ + ng))
        return {
            "n_sequences": float(len(seq)),
            "dice_seq": float(np.mean(seq)) if seq else 0.0,
            "dice_frame": float(np.mean(self.frame)) if self.frame else 0.0,
            "dice_frame_strict": float(np.mean(self.strict)) if self.strict else 0.0,
        }


def screening_metrics(truth: Sequence[bool], called: Sequence[bool]) -> dict[str, float]:
    """Video-level screening figures of positive/negative calls: ``sensitivity`` (positive videos called
    positive), ``specificity`` (negative videos called negative), and the counts. A rate with no video to measure
    it on is NaN."""
    t = np.asarray(truth, bool).reshape(-1)
    c = np.asarray(called, bool).reshape(-1)
    tp, fp, fn, tn = _counts(t, c)
    return {
        "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
        "n_positive": float(tp + fn),
        "n_negative": float(tn + fp),
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "tn": float(tn),
    }


# ---------------------------------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------------------------------

EPS = 1e-7


@dataclass(frozen=True)
class FrameDetections:
    """One frame: ground truth ``(track_id, label, box)`` and predictions ``(label, score, box)``."""

    gt: Sequence[tuple[int, str, Sequence[float]]]
    pred: Sequence[tuple[str, float, Sequence[float]]]


def frame_detection_scores(frames: Iterable[FrameDetections], score_thr: float = 0.5) -> dict[str, float]:
    """STFT "Polyp Detection" (reference §5.3): per frame TP if it has ground truth and any box scores >= thr, FP
    if it has none but a box scores >= thr, FN if it has ground truth and no such box. No IoU criterion."""
    tp = fp = fn = tn = 0
    for f in frames:
        has_gt = len(f.gt) > 0
        hit = any(s >= score_thr for _, s, _ in f.pred)
        if has_gt and hit:
            tp += 1
        elif hit:
            fp += 1
        elif has_gt:
            fn += 1
        else:
            tn += 1
    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    f1 = 2 * precision * recall / (precision + recall + EPS)
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes ``a [N,4]`` and ``b [M,4]`` -> ``[N, M]`` (exclusive x1/y1)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2010+ / COCO without the 101-point sampling)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(mpre.size - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def box_ap(frames: Sequence[FrameDetections], iou_thr: float = 0.5) -> dict[str, float]:
    """Box AP at ``iou_thr`` per class and their mean (``map50``) over classes that have ground truth."""
    labels = sorted({lab for f in frames for _, lab, _ in f.gt})
    out: dict[str, float] = {}
    aps = []
    for lab in labels:
        n_gt = 0
        dets: list[tuple[float, int, np.ndarray]] = []
        gts: list[np.ndarray] = []
        for fi, f in enumerate(frames):
            g = np.array([b for _, gl, b in f.gt if gl == lab], dtype=np.float64).reshape(-1, 4)
            gts.append(g)
            n_gt += g.shape[0]
            dets.extend((float(s), fi, np.asarray(b, dtype=np.float64)) for pl, s, b in f.pred if pl == lab)
        dets.sort(key=lambda d: -d[0])
        used = [np.zeros(g.shape[0], dtype=bool) for g in gts]
        tp = np.zeros(len(dets))
        for k, (_, fi, box) in enumerate(dets):
            g = gts[fi]
            if g.shape[0] == 0:
                continue
            ious = box_iou(box[None], g)[0]
            ious[used[fi]] = -1.0
            j = int(np.argmax(ious))
            if ious[j] >= iou_thr:
                used[fi][j] = True
                tp[k] = 1
        ctp = np.cumsum(tp)
        cfp = np.cumsum(1 - tp)
        recall = ctp / max(n_gt, 1)
        precision = ctp / np.maximum(ctp + cfp, 1e-12)
        ap = _average_precision(recall, precision) if dets else 0.0
        out[f"ap50/{lab}"] = ap
        aps.append(ap)
    out["map50"] = float(np.mean(aps)) if aps else 0.0
    return out


# ---------------------------------------------------------------------------------------------------------------
# per lesion (track ids)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LesionResult:
    video: str
    track_id: int
    first_frame: int
    first_detected: int | None
    fps: float

    @property
    def detected(self) -> bool:
        return self.first_detected is not None

    @property
    def delay_frames(self) -> int | None:
        return None if self.first_detected is None else self.first_detected - self.first_frame

    @property
    def delay_s(self) -> float | None:
        d = self.delay_frames
        return None if d is None else d / self.fps


def lesion_results(
    video: str,
    frames: Sequence[FrameDetections],
    fps: float,
    score_thr: float = 0.5,
    iou_thr: float = 0.3,
    frame_ids: Sequence[int] | None = None,
) -> list[LesionResult]:
    """For each track id of one video: its first frame and the first frame where a box scoring >= ``score_thr``
    overlaps it with IoU >= ``iou_thr`` (``iou_thr=0`` accepts any confident box on a frame where it is visible).
    ``frame_ids``: the frame number of each entry of ``frames`` (default 0, 1, 2, ...), in increasing order."""
    first: dict[int, int] = {}
    found: dict[int, int] = {}
    ids = list(range(len(frames))) if frame_ids is None else [int(i) for i in frame_ids]
    for i, f in zip(ids, frames):
        confident = np.array([b for _, s, b in f.pred if s >= score_thr], dtype=np.float64).reshape(-1, 4)
        for tid, _, box in f.gt:
            first.setdefault(tid, i)
            if tid in found or confident.shape[0] == 0:
                continue
            ious = box_iou(np.asarray(box, dtype=np.float64)[None], confident)[0]
            if (iou_thr <= 0 and confident.shape[0] > 0) or np.any(ious >= iou_thr):
                found[tid] = i
    return [LesionResult(video, t, first[t], found.get(t), fps) for t in sorted(first)]


def lesion_metrics(results: Iterable[LesionResult]) -> dict[str, float]:
    """Per-lesion sensitivity and first-detection delay (median and mean over detected lesions, seconds)."""
    rs = list(results)
    delays = [r.delay_s for r in rs if r.delay_s is not None]
    return {
        "n_lesions": float(len(rs)),
        "lesion_sensitivity": (sum(r.detected for r in rs) / len(rs)) if rs else 0.0,
        "delay_median_s": float(np.median(delays)) if delays else math.nan,
        "delay_mean_s": float(np.mean(delays)) if delays else math.nan,
    }


def mask_to_boxes(instance_mask: np.ndarray) -> list[tuple[int, list[float]]]:
    """``(track_id, box)`` for each non-zero id in an instance mask (exclusive x1/y1)."""
    out = []
    for tid in np.unique(instance_mask):
        if tid == 0:
            continue
        ys, xs = np.nonzero(instance_mask == tid)
        out.append((int(tid), [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]))
    return out


def merge_prefixed(parts: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """``{"classification": {"f1": ..}}`` -> ``{"classification/f1": ..}`` (the flat form progress events carry)."""
    return {f"{task}/{k}": float(v) for task, m in parts.items() for k, v in m.items()}
