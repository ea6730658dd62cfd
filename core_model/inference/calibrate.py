"""Calibrating a model for the app: its video-level operating point and its out-of-domain reference.

``endofm calibrate --model DIR --manifest M [--split val] [--train-split train] [--max-videos N]``

1. **Operating point** (``model.json`` ``operating_points.classification``): every video of the validation split is
   run through the serving path (``Predictor``, the model's recorded data config). Each candidate rule - the
   per-frame evidence (the classification head's ``abnormal`` probability, or the best ``polyp`` mask or box score
   of the frame) x the sustained window (1/3, 1/2, 1 s) - is calibrated by
   :func:`core_model.contract.calibrate_operating_point` (the most specific threshold that keeps validation
   sensitivity >= 0.9) and the winner is the one that keeps the sensitivity, then the most specific, then the one
   with the widest gap between positive and negative videos (:func:`choose_operating_point`; the table of
   candidates goes to ``provenance.calibration``). Sensitivity, specificity and counts are recorded with it.
2. **Out-of-domain reference** (``model.json`` ``ood``): the backbone's final-norm CLS feature of every clip of the
   training split; per-dimension mean and standard deviation. A clip's distance is the root-mean-square z-score
   over dimensions (a diagonal Mahalanobis distance / sqrt(D)); a video's distance is the median over its clips.
   The threshold is ``OOD_MARGIN`` x the 99th percentile of the training videos' distances. The cost at
   prediction time is one hook on the backbone's final norm (no extra forward pass). It flags inputs unlike the
   training videos (another modality, a synthetic scene, a different procedure); it says nothing about whether a
   prediction on an in-domain video is right.

The model's weights are not touched; ``model.json`` is rewritten atomically with its weights hash kept.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core_model.contract import META_FILE, OperatingPoint, calibrate_operating_point, read_model_json

log = logging.getLogger(__name__)

__all__ = ["OOD_MARGIN", "CLSRecorder", "calibrate_model", "fit_ood", "ood_verdict"]

OOD_METHOD = "cls-diag-z-rms"
OOD_MARGIN = 1.5


class CLSRecorder:
    """A forward hook on ``model.backbone.norm`` keeping each clip's CLS feature (``[D]`` float32, CPU)."""

    def __init__(self, model: torch.nn.Module, ref: dict[str, Any] | None = None):
        self.features: list[np.ndarray] = []
        # with a reference, only each clip's distance is kept (8 bytes instead of D floats: a 30-minute video
        # would otherwise hold ~40,000 feature vectors, and the predictor's memory would grow with the video)
        self._ref = ref if ref and ref.get("method") == OOD_METHOD else None
        self.distances = array("d")
        norm = model.backbone.norm if hasattr(model, "backbone") else model.norm
        self._handle = norm.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        if output.dim() == 3:  # [B, 1+N*T, D]
            feats = output[:, 0].detach().float().cpu().numpy().copy()  # not a view keeping the batch alive
            if self._ref is not None:
                self.distances.extend(_distances(feats, self._ref).tolist())
            else:
                self.features.extend(feats)

    def take(self) -> np.ndarray:
        out = np.stack(self.features) if self.features else np.zeros((0, 0), np.float32)
        self.features = []
        return out

    def close(self) -> None:
        self._handle.remove()


def _distances(feats: np.ndarray, ref: dict[str, Any]) -> np.ndarray:
    mu = np.asarray(ref["mean"], np.float64)
    sd = np.asarray(ref["std"], np.float64)
    z = (np.asarray(feats, np.float64) - mu) / sd
    return np.sqrt((z**2).mean(axis=1))


def fit_ood(per_video_feats: list[np.ndarray]) -> dict[str, Any]:
    """The reference from training clips' CLS features (one array ``[clips, D]`` per video)."""
    allf = np.concatenate([f for f in per_video_feats if len(f)])
    mu = allf.mean(axis=0)
    sd = allf.std(axis=0) + 1e-3 * (allf.std() + 1e-6)
    ref = {"method": OOD_METHOD, "mean": mu.round(5).tolist(), "std": sd.round(5).tolist()}
    video_d = np.array([float(np.median(_distances(f, ref))) for f in per_video_feats if len(f)])
    p99 = float(np.percentile(video_d, 99))
    ref.update(
        train_videos=int(len(video_d)),
        train_clips=int(len(allf)),
        train_median=round(float(np.median(video_d)), 4),
        train_p99=round(p99, 4),
        threshold=round(OOD_MARGIN * p99, 4),
    )
    return ref


def ood_verdict(
    feats: np.ndarray | None, ref: dict[str, Any], distances: Sequence[float] | None = None
) -> dict[str, Any] | None:
    """``{"score", "threshold", "out_of_domain", "message"}`` for one video's clip features (or their
    ``distances``, as ``CLSRecorder(model, ref)`` keeps them); None without a reference (a model never calibrated)
    or clips."""
    n = len(distances) if distances is not None else (0 if feats is None else len(feats))
    if not ref or ref.get("method") != OOD_METHOD or n == 0:
        return None
    d = np.asarray(distances, np.float64) if distances is not None else _distances(feats, ref)
    score = float(np.median(d))
    thr = float(ref["threshold"])
    out = score > thr
    msg = (
        f"unlike the videos this model was trained on (distance {score:.2f} > {thr:.2f}): its predictions may "
        "be meaningless here"
        if out
        else f"within the model's training data (distance {score:.2f} <= {thr:.2f})"
    )
    return {"score": round(score, 4), "threshold": thr, "out_of_domain": bool(out), "message": msg}


def _video_scores(predictor, path: str, positive: str, finding: str) -> tuple[dict[str, np.ndarray], float]:
    """Per-frame evidence of one video through the serving path: ``{"classification": p(positive),
    "segmentation": best finding-mask score, "detection": best finding-box score}`` and the frame rate."""
    from core_model.inference.predictor import FrameEvidence

    cls: dict[int, float] = {}
    fps, ev_rec = 30.0, None
    for ev in predictor.predict_video(path):
        kind = ev.get("event")
        if kind == "video_start":
            fps = float(ev.get("fps") or 30.0)
            ev_rec = FrameEvidence(int(ev["num_frames"]), finding)
        elif kind == "frame":
            cls[int(ev["frame"])] = float((ev.get("probs") or {}).get(positive, 0.0))
            ev_rec.add(int(ev["frame"]), ev)
        elif kind == "error":
            raise RuntimeError(ev.get("message", f"{path}: prediction failed"))
    n = len(ev_rec.seg) if ev_rec is not None else 0
    c = np.zeros(n)
    for f, p in cls.items():
        c[f] = p
    return {"classification": c, "segmentation": ev_rec.seg, "detection": ev_rec.det}, fps


WINDOWS_S = (1 / 3, 0.5, 1.0)


def choose_operating_point(
    videos: list[tuple[dict[str, np.ndarray], float, bool]],
    base: OperatingPoint,
    evidences: tuple[str, ...],
    split: str = "val",
    min_sensitivity: float = 0.9,
) -> tuple[OperatingPoint, list[dict[str, Any]]]:
    """Every (evidence, sustained window) candidate calibrated on the validation videos (``(scores by evidence,
    fps, truth)``); the winner has sensitivity >= ``min_sensitivity``, then the best specificity, then the widest
    gap between the lowest positive and the highest negative video score. Returns it and the table."""
    from core_model.contract import aggregate_score

    table, best = [], None
    for evidence in evidences:
        for w in WINDOWS_S:
            cand = OperatingPoint(
                **{**base.to_dict(), "evidence": evidence, "rule": "sustained", "window_s": w}
            )
            scores = [aggregate_score(sc[evidence], fps, cand)[0] for sc, fps, _ in videos]
            truth = [t for _, _, t in videos]
            op = calibrate_operating_point(scores, truth, cand, split, min_sensitivity)
            pos = [s for s, t in zip(scores, truth) if t]
            neg = [s for s, t in zip(scores, truth) if not t]
            gap = (min(pos) - max(neg)) if pos and neg else 0.0
            ok = (op.sensitivity or 0.0) >= min_sensitivity - 1e-12
            key = (ok, op.specificity or 0.0, gap)
            table.append(
                {"evidence": evidence, "window_s": round(w, 3), "threshold": op.threshold,
                 "sensitivity": op.sensitivity, "specificity": op.specificity, "gap": round(gap, 4)}
            )  # fmt: skip
            if best is None or key > best[0]:
                best = (key, op)
    assert best is not None
    return best[1], table


def calibrate_model(
    model_dir: str | os.PathLike,
    manifest_path: str | os.PathLike,
    split: str = "val",
    train_split: str = "train",
    rule: str = "sustained",
    window_s: float = 1.0,
    min_sensitivity: float = 0.9,
    max_videos: int = 0,
    on_video: Callable[[str, str], None] | None = None,
    ood: bool = True,
    choose: bool = True,
) -> dict[str, Any]:
    """Calibrate ``model_dir`` in place (see the module docstring); returns what was written."""
    from core_model.atomic import atomic_write_text
    from core_model.data.manifest import load_manifest
    from core_model.inference.predictor import Predictor

    d = Path(model_dir)
    meta = read_model_json(d)
    manifest = load_manifest(manifest_path)
    pred = Predictor(d)
    out: dict[str, Any] = {}
    rec = CLSRecorder(pred.model)
    try:
        if "classification" in pred.model.heads:
            base = meta.operating_point("classification")
            base = OperatingPoint(**{**base.to_dict(), "rule": rule, "window_s": window_s})
            vids = [v for v in manifest.videos if v.split == split and v.video_label is not None]
            vids = vids[:max_videos] if max_videos else vids
            if not vids:
                raise ValueError(f"{manifest_path}: no labelled video in split {split!r} to calibrate on")
            evidences = ("classification",) + tuple(
                t for t in ("segmentation", "detection") if base.finding in meta.classes(t)
            )
            per_video = []
            val_feats = []
            for v in vids:
                sc, fps = _video_scores(pred, str(manifest.resolve_path(v)), base.positive, base.finding)
                val_feats.append(rec.take())
                per_video.append((sc, fps, v.video_label == base.positive))
                if on_video:
                    on_video(str(manifest.resolve_path(v)), "calibrated")
            if rule == "sustained" and choose:
                op, table = choose_operating_point(per_video, base, evidences, split, min_sensitivity)
                meta.provenance["calibration"] = {"split": split, "videos": len(vids), "candidates": table}
            else:
                from core_model.contract import aggregate_score

                agg = [aggregate_score(sc[base.evidence], fps, base)[0] for sc, fps, _ in per_video]
                op = calibrate_operating_point(agg, [t for *_, t in per_video], base, split, min_sensitivity)
            meta.operating_points["classification"] = op
            out["operating_point"] = op.to_dict()
        train = [v for v in manifest.videos if v.split == train_split] if ood else []
        train = train[:max_videos] if max_videos else train
        feats = []
        if ood and train_split == split and "classification" in pred.model.heads:
            feats, train = list(val_feats), []  # the reference from the videos just run (no second pass)
        for v in train:
            for ev in pred.predict_video(str(manifest.resolve_path(v))):
                if ev.get("event") == "error":
                    raise RuntimeError(ev.get("message"))
            feats.append(rec.take())
            if on_video:
                on_video(str(manifest.resolve_path(v)), "ood reference")
        if feats:
            meta.ood = fit_ood(feats)
            out["ood"] = {k: v for k, v in meta.ood.items() if k not in ("mean", "std")}
    finally:
        rec.close()
    raw = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    record = meta.to_dict()
    if "weights" in raw:
        record["weights"] = raw["weights"]
    atomic_write_text(d / META_FILE, json.dumps(record, indent=2) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="endofm calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model directory (model.json is updated in place)")
    ap.add_argument(
        "--manifest", required=True, help="training manifest with the validation and training splits"
    )
    ap.add_argument("--split", default="val", help="split the operating point is chosen on (default val)")
    ap.add_argument("--train-split", default="train", help="split the out-of-domain reference is fitted on")
    ap.add_argument("--rule", default="sustained", choices=["sustained", "top_k", "mean"])
    ap.add_argument("--window-s", type=float, default=1.0, help="sustained rule: seconds (default 1)")
    ap.add_argument("--min-sensitivity", type=float, default=0.9)
    ap.add_argument("--max-videos", type=int, default=0, help="at most N videos per split (0: all)")
    ap.add_argument("--no-ood", action="store_true", help="keep the out-of-domain reference as it is")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))

    def say(path: str, what: str) -> None:
        print(json.dumps({"event": "progress", "video": path, "stage": what}), flush=True)

    try:
        res = calibrate_model(
            args.model,
            args.manifest,
            args.split,
            args.train_split,
            args.rule,
            args.window_s,
            args.min_sensitivity,
            args.max_videos,
            say,
            ood=not args.no_ood,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        print(json.dumps({"event": "error", "message": str(exc)}), flush=True)
        return 1
    print(json.dumps({"event": "done", **res}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
