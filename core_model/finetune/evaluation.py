"""Evaluate a model directory on a split of a training manifest (``endofm evaluate``, the registry's compare).

Evaluation **is** serving: every video of the split goes through ``core_model.inference.Predictor``, the code path
``endofm predict`` and the app use, so clip sampling, resize/crop, normalisation, mask post-processing and the
whole-video call are the model's recorded protocol (``model.json`` ``data``) and its operating point
(``operating_points.classification``), not a second implementation of them. What the clinician is shown is what
is scored:

* classification: the headline figures (``accuracy``, ``f1``, ``precision``, ``recall``, ``macro_f1``) score the
  **whole-video decision** of the model's operating point (``video_done`` ``decision``: the label ``endofm
  predict`` and the player's banner give); the screening figures at that operating point (``sensitivity``,
  ``specificity``, their counts, ``threshold``, ``calibrated``); and, for comparison with older results, the legacy
  call (the argmax of the mean of clip probabilities) as ``mean_argmax_accuracy`` / ``mean_argmax_f1``;
* segmentation: Dice at the video's own resolution, on the masks the predictor emits (COCO RLE), against the
  labelled frames (per sequence on the volume, per frame, and per frame with the strict empty rules);
* detection: the frame-level F1 at ``score_thr``, AP50 and per-lesion sensitivity/delay, on the predictor's boxes
  (those it lists: score >= its ``box_threshold``) in frame pixels.

Labels are matched to the model's heads by class name (labels the model does not know are left out). The per-frame
outcomes (``EvalResult.frames``; frame ``-1`` holds the video-level call) are what the registry compares between two
versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from core_model.contract import rle_decode
from core_model.finetune import metrics as M
from core_model.finetune.augment import IGNORE
from core_model.finetune.data import LabelIndex, build_sequences, check_files
from core_model.finetune.engine import EvalResult

__all__ = ["evaluate_model_dir"]


def evaluate_model_dir(
    model_dir: str | Path,
    manifest_path: str | Path,
    split: str = "test",
    tasks: tuple[str, ...] | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    score_thr: float = 0.5,
    on_step: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Scores ``model_dir`` on the videos of ``split`` (``"all"``: every video) through the serving path (see the
    module docstring). ``on_step(done, total)``: frames finalised over the whole split."""
    from core_model.data.manifest import load_manifest
    from core_model.inference.predictor import Predictor

    manifest = load_manifest(manifest_path)
    by_split = build_sequences(manifest)
    seqs = [q for qs in by_split.values() for q in qs] if split == "all" else by_split.get(split, [])
    if not seqs:
        raise ValueError(f"{manifest_path}: no video in split {split!r}")
    check_files(seqs)
    pred = Predictor(
        model_dir,
        device=device,
        batch_size=batch_size,
        box_threshold=min(0.1, float(score_thr)),
    )
    heads = pred.model.heads
    have = list(heads)
    tasks = tuple(t for t in (tasks or have) if t in have)
    if not tasks:
        raise ValueError(f"{model_dir}: has heads {have}, none of the requested tasks")
    classes: dict[str, tuple[str, ...]] = {}
    if "classification" in tasks:
        classes["video"] = tuple(heads["classification"].classes)
    if "segmentation" in tasks:
        classes["mask"] = tuple(c for c in heads["segmentation"].classes if c != "background")
    if "detection" in tasks:
        classes["box"] = tuple(heads["detection"].classes)
    op = pred.meta.operating_point("classification") if pred.meta is not None else None

    frames: dict[str, dict[int, dict[str, Any]]] = {s.name: {} for s in seqs}
    cls_rows: list[dict[str, Any]] = []
    seg = M.SegmentationAccumulator()
    det_frames: list[M.FrameDetections] = []
    lesions: list[M.LesionResult] = []
    total = sum(s.length for s in seqs)
    done_before = 0
    for seq in seqs:
        li = LabelIndex(seq.video, classes)
        whole = seq.start == 0 and seq.end == seq.video.num_frames
        want = None if whole else range(seq.start, seq.end)
        out = frames[seq.name]
        seq_det: list[tuple[int, M.FrameDetections]] = []
        end_event: dict[str, Any] | None = None

        def progress(done: int, _n: int, base: int = done_before) -> None:
            if on_step is not None:
                on_step(base + done, total)

        for ev in pred.predict_video(seq.path, frames=want, on_progress=progress):
            kind = ev.get("event")
            if kind == "error":
                raise ValueError(f"{seq.path}: video of manifest entry {seq.video.id!r}: {ev.get('message')}")
            if kind == "video_done":
                end_event = ev
            if kind != "frame":
                continue
            f = int(ev["frame"])
            if "segmentation" in tasks and li.labelled(f):
                gt = li.class_mask(f)
                if not np.all(gt == IGNORE):
                    p = np.zeros(gt.shape, bool)
                    for m in ev.get("masks") or ():
                        if m.get("label") in classes["mask"]:
                            p |= rle_decode(m["rle"]).astype(bool)
                    d = out.setdefault(f, {})
                    d["mask_pixels"] = int(p.sum())
                    d["dice"] = round(seg.add(seq.name, p, gt > 0), 4)
            if "detection" in tasks:
                b = li.boxes(f)
                if b is not None:
                    names = classes["box"]
                    fd = M.FrameDetections(
                        gt=[(int(t), names[int(lab)], bb) for bb, lab, t in zip(b[0].tolist(), b[1], b[2])],
                        pred=[(x["label"], float(x["score"]), x["bbox"]) for x in ev.get("boxes") or ()],
                    )
                    seq_det.append((f, fd))
                    best = max((s for _, s, _ in fd.pred), default=0.0)
                    d = out.setdefault(f, {})
                    d["det_score"] = round(float(best), 4)
                    d["det_hit"] = bool(best >= score_thr)
        done_before += seq.length
        if end_event is None:
            raise ValueError(f"{seq.path}: the prediction of manifest entry {seq.video.id!r} did not finish")
        if seq_det:
            det_frames.extend(fd for _, fd in seq_det)
            lesions.extend(
                M.lesion_results(
                    seq.name,
                    [fd for _, fd in seq_det],
                    fps=seq.video.fps,
                    score_thr=score_thr,
                    frame_ids=[f for f, _ in seq_det],
                )
            )
        if "classification" in tasks and li.video_target != IGNORE:
            row = _video_call(end_event, classes["video"], li.video_target)
            cls_rows.append(row)
            out[-1] = {k: v for k, v in row.items() if k != "target"}

    parts: dict[str, dict[str, float]] = {}
    if "classification" in tasks:
        parts["classification"] = _classification(cls_rows, classes["video"], op)
    if "segmentation" in tasks:
        parts["segmentation"] = seg.result()
    if "detection" in tasks:
        d = M.frame_detection_scores(det_frames, score_thr)
        d.update(M.box_ap(det_frames))
        d.update(M.lesion_metrics(lesions))
        parts["detection"] = d
    return EvalResult(M.merge_prefixed(parts), frames)


def _video_call(done: dict[str, Any], classes: tuple[str, ...], target: int) -> dict[str, Any]:
    """One video's outcome from the predictor's ``video_done``: the served decision and the legacy call."""
    probs = done.get("probs") or {}
    prob = np.array([float(probs.get(c, 0.0)) for c in classes])
    legacy = int(np.argmax(prob))
    decision = done.get("decision")
    called = legacy
    if decision is not None and decision.get("label") in classes and len(classes) == 2:
        called = classes.index(decision["label"])
    row: dict[str, Any] = {
        "target": target,
        "video_prob": prob.round(4).tolist(),
        "video_pred": called,
        "mean_argmax_pred": legacy,
    }
    if decision is not None:
        row["decision"] = decision.get("text", "")
        row["positive"] = bool(decision.get("positive"))
        row["score"] = decision.get("score")
    if done.get("ood") is not None:
        row["out_of_domain"] = bool(done["ood"].get("out_of_domain"))
    return row


def _classification(rows: list[dict[str, Any]], classes: tuple[str, ...], op) -> dict[str, float]:
    t_ = [r["target"] for r in rows]
    out = M.classification_metrics(t_, [r["video_pred"] for r in rows], list(classes))
    legacy = M.classification_metrics(t_, [r["mean_argmax_pred"] for r in rows], list(classes))
    out["mean_argmax_accuracy"] = legacy["accuracy"]
    out["mean_argmax_f1"] = legacy["f1"]
    if op is not None and op.positive in classes:
        k = classes.index(op.positive)
        called = [r["positive"] if "positive" in r else r["video_pred"] == k for r in rows]
        s = M.screening_metrics([tv == k for tv in t_], called)
        out.update(s)
        out["threshold"] = float(op.threshold)
        out["calibrated"] = 1.0 if op.calibrated else 0.0
    else:
        out.update(sensitivity=math.nan, specificity=math.nan)
    return out
