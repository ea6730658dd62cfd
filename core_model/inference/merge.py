"""Turning clip outputs into per-frame results (the merge rules of ``core_model.inference.planning``).

``FrameMerger.add(clips, outputs)`` folds one batch of clip outputs in; ``frame_event(video, f, frame_hw)`` builds
frame f's event once every clip that can touch it has been added; ``release_before(limit)`` frees what finished
frames held. Class probabilities: mean over the clips whose span contains the frame. Masks: mean per-pixel class
probabilities over the clips that sample the frame, resized bilinearly to the frame, then argmax (computed at model
resolution until the mask is encoded: ``core_model.inference.masks``). Boxes: from the clip
that samples the frame closest to its centre, scaled per axis to frame pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from core_model.inference.masks import frame_masks
from core_model.inference.planning import Clip

__all__ = ["FrameMerger"]


class FrameMerger:
    def __init__(
        self,
        heads: Mapping[str, Any],
        num_frames: int,
        model_size: tuple[int, int],
        box_threshold: float = 0.1,
        max_boxes: int = 20,
    ):
        self.cls_head = heads.get("classification")
        self.seg_head = heads.get("segmentation")
        self.det_head = heads.get("detection")
        self.model_size = model_size  # (S_h, S_w)
        self.box_threshold = float(box_threshold)
        self.max_boxes = int(max_boxes)
        n_cls = len(self.cls_head.classes) if self.cls_head is not None else 0
        self.cls_sum = np.zeros((num_frames, n_cls), dtype=np.float64)
        self.cls_cnt = np.zeros(num_frames, dtype=np.int64)
        self.clip_sum = np.zeros(n_cls, dtype=np.float64)
        self.clips_added = 0
        self.seg_acc: dict[int, list] = {}  # frame -> [sum of probs [K, S_h, S_w] (model device), count]
        self.det_best: dict[
            int, tuple[float, dict[str, torch.Tensor]]
        ] = {}  # frame -> (offset from centre, dets)

    def predict(self, outputs: Mapping[str, Any]) -> dict[str, Any]:
        """The heads' ``predict`` of one batch of model outputs (class probabilities ``[B, C]`` as numpy,
        segmentation probabilities ``[B, T, K, S_h, S_w]``, detection dicts per ``B*T`` frame on the CPU). Uses no
        merger state, so a worker thread may run it beside the model (``Predictor``)."""
        out: dict[str, Any] = {}
        if self.cls_head is not None:
            out["classification"] = self.cls_head.predict(outputs["classification"]).cpu().numpy()
        if self.seg_head is not None:
            out["segmentation"] = self.seg_head.predict(outputs["segmentation"])
        if self.det_head is not None:
            dets = self.det_head.predict(outputs["detection"])
            out["detection"] = [{k: v.cpu() for k, v in d.items()} for d in dets]
        return out

    def add(self, clips: Sequence[Clip], outputs: Mapping[str, Any]) -> None:
        """Fold in one batch: ``outputs`` is ``EndoFMTaskModel`` output for these clips, in order."""
        self.add_predicted(clips, self.predict(outputs))

    def add_predicted(self, clips: Sequence[Clip], preds: Mapping[str, Any]) -> None:
        """Fold in one batch of ``predict(outputs)`` for these clips, in order (batches in plan order)."""
        self.clips_added += len(clips)
        if self.cls_head is not None:
            probs = preds["classification"]  # [B, C]
            for clip, p in zip(clips, probs):
                self.cls_sum[clip.start : clip.span_end] += p
                self.cls_cnt[clip.start : clip.span_end] += 1
                self.clip_sum += p
        if self.seg_head is not None:
            seg = preds["segmentation"]  # [B, T, K, S_h, S_w] float32
            for clip, clip_probs in zip(clips, seg):
                for pos, f in enumerate(clip.indices):
                    if pos and f == clip.indices[pos - 1]:
                        continue  # the last frame repeated (a clip past the end of a short video)
                    acc = self.seg_acc.get(f)
                    if acc is None:
                        self.seg_acc[f] = [clip_probs[pos].clone(), 1]
                    else:
                        acc[0] += clip_probs[pos]
                        acc[1] += 1
        if self.det_head is not None:
            dets = preds["detection"]  # B*T dicts, rows b*T + t
            t_len = len(clips[0].indices) if clips else 0
            for b, clip in enumerate(clips):
                for pos, f in enumerate(clip.indices):
                    off = clip.offset_from_centre(f)
                    if f not in self.det_best or off < self.det_best[f][0]:
                        self.det_best[f] = (off, dets[b * t_len + pos])

    def release_before(self, limit: int) -> None:
        for f in [f for f in self.seg_acc if f < limit]:
            del self.seg_acc[f]
        for f in [f for f in self.det_best if f < limit]:
            del self.det_best[f]

    def video_probs(self) -> dict[str, float]:
        """Video-level class probabilities: the mean over every clip added."""
        if self.cls_head is None or not self.clips_added:
            return {}
        mean = self.clip_sum / self.clips_added
        return {c: round(float(p), 5) for c, p in zip(self.cls_head.classes, mean)}

    def frame_event(self, video: str, f: int, frame_hw: tuple[int, int]) -> dict[str, Any]:
        h, w = frame_hw
        event: dict[str, Any] = {
            "event": "frame",
            "video": video,
            "frame": int(f),
            "probs": {},
            "masks": [],
            "boxes": [],
        }
        if self.cls_head is not None and self.cls_cnt[f] > 0:
            p = self.cls_sum[f] / self.cls_cnt[f]
            event["probs"] = {c: round(float(v), 5) for c, v in zip(self.cls_head.classes, p)}
        if self.seg_head is not None and f in self.seg_acc:
            total, count = self.seg_acc[f]
            probs = (total / count).float().cpu().numpy()  # [K, S_h, S_w]: stays at model resolution
            event["masks"] = frame_masks(probs, (h, w), self.seg_head.classes)
        if self.det_head is not None and f in self.det_best:
            event["boxes"] = self._boxes(self.det_best[f][1], h, w)
        return event

    def _boxes(self, res: dict[str, torch.Tensor], h: int, w: int) -> list[dict[str, Any]]:
        sy, sx = h / self.model_size[0], w / self.model_size[1]
        keep = res["scores"] >= self.box_threshold
        rows = zip(res["boxes"][keep].tolist(), res["scores"][keep].tolist(), res["labels"][keep].tolist())
        out = []
        for (x0, y0, x1, y1), score, label in list(rows)[: self.max_boxes]:
            bbox = [
                round(min(max(x0 * sx, 0.0), w), 2),
                round(min(max(y0 * sy, 0.0), h), 2),
                round(min(max(x1 * sx, 0.0), w), 2),
                round(min(max(y1 * sy, 0.0), h), 2),
            ]
            if all(math.isfinite(v) for v in bbox) and bbox[2] > bbox[0] and bbox[3] > bbox[1]:
                out.append(
                    {
                        "label": self.det_head.classes[int(label)],
                        "score": round(float(score), 4),
                        "bbox": bbox,
                    }
                )
        return out
