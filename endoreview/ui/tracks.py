"""Per-video arrays the timeline and overlays draw from (Qt-free; built on a worker thread from service results).

:class:`PredictionTrack` turns a stream of per-frame predictions (``frame``, ``probs``, ``masks``, ``boxes`` as in
``docs/interfaces.md``) into dense arrays: class probabilities ``[T, C]`` and the best detection score ``[T]``
(NaN where a frame has no prediction yet), plus the masks and boxes of each frame. It grows as a job streams results.
:class:`LabelTrack` holds the human side: segments by review state and which frames are reviewed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from endoreview.services.editing import DERIVED_ORIGINS
from endoreview.services.records import LabelKind, ReviewState


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


@dataclass
class PredictionTrack:
    frame_count: int
    classes: list[str] = field(default_factory=list)
    probs: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [T, C]
    det_score: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [T]
    masks: dict[int, list[dict]] = field(default_factory=dict)
    boxes: dict[int, list[dict]] = field(default_factory=dict)
    model_name: str = ""

    def __post_init__(self) -> None:
        if self.probs.shape[0] != self.frame_count:
            self.probs = np.full((self.frame_count, len(self.classes)), np.nan, np.float32)
        if self.det_score.shape[0] != self.frame_count:
            self.det_score = np.full(self.frame_count, np.nan, np.float32)

    @property
    def frames_done(self) -> int:
        if self.probs.size:
            return int(np.count_nonzero(~np.isnan(self.probs).all(axis=1)))
        return int(np.count_nonzero(~np.isnan(self.det_score)))

    @property
    def empty(self) -> bool:
        if self.masks or self.boxes:
            return False
        # a run has its first frames done unless it is empty: look there before scanning the whole video (the
        # player, the timeline and the overlay each ask when a 30-minute video opens)
        head = self.probs[:1024] if self.probs.size else self.det_score[:1024]
        return bool(np.isnan(head).all()) and self.frames_done == 0

    def _class_index(self, name: str) -> int:
        if name not in self.classes:
            self.classes.append(name)
            col = np.full((self.frame_count, 1), np.nan, np.float32)
            self.probs = np.concatenate([self.probs, col], axis=1)
        return self.classes.index(name)

    def add(self, pred: Any) -> None:
        """Add one frame's prediction (a ``FramePrediction`` or a ``{"event": "frame", ...}`` dict)."""
        i = int(_get(pred, "frame"))
        if not 0 <= i < self.frame_count:
            return
        for name, p in (_get(pred, "probs") or {}).items():
            k = self._class_index(str(name))  # may grow self.probs: index after
            self.probs[i, k] = float(p)
        masks = [dict(m) for m in (_get(pred, "masks") or ())]
        boxes = [dict(b) for b in (_get(pred, "boxes") or ())]
        if masks:
            self.masks[i] = masks
        else:
            self.masks.pop(i, None)
        if boxes:
            self.boxes[i] = boxes
        else:
            self.boxes.pop(i, None)
        scores = [float(b.get("score", 0.0)) for b in boxes] + [float(m.get("score", 0.0)) for m in masks]
        self.det_score[i] = max(scores) if scores else 0.0

    def extend(self, preds: Iterable[Any]) -> None:
        for p in preds:
            self.add(p)

    def top_class(self, i: int) -> tuple[str, float] | None:
        if not self.classes or not 0 <= i < self.frame_count:
            return None
        row = self.probs[i]
        if np.isnan(row).all():
            return None
        k = int(np.nanargmax(row))
        return self.classes[k], float(row[k])

    def uncertainty(self) -> np.ndarray:
        """Per-frame normalised entropy of the class probabilities in [0, 1] (NaN without a prediction)."""
        if not self.classes:
            return np.full(self.frame_count, np.nan, np.float32)
        p = np.clip(np.nan_to_num(self.probs, nan=0.0), 1e-6, 1.0)
        if len(self.classes) == 1:
            p = np.concatenate([p, 1.0 - p], axis=1)
        p = p / p.sum(axis=1, keepdims=True)
        ent = -(p * np.log(p)).sum(axis=1) / math.log(p.shape[1])
        ent[np.isnan(self.probs).all(axis=1)] = np.nan
        return ent.astype(np.float32)

    def positive_fraction(self, cls: str, threshold: float = 0.5) -> float | None:
        if cls not in self.classes:
            return None
        col = self.probs[:, self.classes.index(cls)]
        valid = ~np.isnan(col)
        if not valid.any():
            return None
        return float((col[valid] >= threshold).mean())


@dataclass(frozen=True)
class Segment:
    start: int
    end: int  # exclusive
    class_name: str
    state: str
    label_id: int | None = None


@dataclass
class LabelTrack:
    frame_count: int
    segments: list[Segment] = field(default_factory=list)
    reviewed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [T] frames a human has judged

    def __post_init__(self) -> None:
        if self.reviewed.shape[0] != self.frame_count:
            self.reviewed = np.zeros(self.frame_count, bool)

    @classmethod
    def from_labels(cls, frame_count: int, labels: Iterable[Any]) -> LabelTrack:
        track = cls(frame_count)
        for lab in labels:
            kind = str(_get(lab, "kind"))
            state = str(_get(lab, "state"))
            # judged by a human: not a suggestion, and not propagated / interpolated by a tool (those become
            # keyframes, origin "drawn", once a reviewer edits them)
            judged = state != ReviewState.SUGGESTED and str(_get(lab, "origin")) not in DERIVED_ORIGINS
            if kind == LabelKind.SEGMENT:
                s, e = int(_get(lab, "start_frame")), int(_get(lab, "end_frame"))
                track.segments.append(Segment(s, e, str(_get(lab, "class_name")), state, _get(lab, "id")))
                if judged:
                    track.reviewed[max(0, s) : min(frame_count, e)] = True
            elif kind == LabelKind.VIDEO_CLASS and state != ReviewState.SUGGESTED:
                track.segments.append(
                    Segment(0, frame_count, str(_get(lab, "class_name")), state, _get(lab, "id"))
                )
            elif kind in (LabelKind.MASK, LabelKind.BOX) and judged:
                f = _get(lab, "frame")
                if f is not None and 0 <= int(f) < frame_count:
                    track.reviewed[int(f)] = True
        track.segments.sort(key=lambda s: (s.start, s.end))
        return track

    def human_positive(self, cls: str) -> np.ndarray:
        """[T] bool: frames a human put in a ``cls`` segment (accepted / edited / manual)."""
        out = np.zeros(self.frame_count, bool)
        for s in self.segments:
            if s.class_name == cls and s.state in (
                ReviewState.ACCEPTED,
                ReviewState.EDITED,
                ReviewState.MANUAL,
            ):
                out[max(0, s.start) : min(self.frame_count, s.end)] = True
        return out

    @property
    def review_fraction(self) -> float:
        return float(self.reviewed.mean()) if self.frame_count else 0.0


def disagreements(pred: PredictionTrack, labels: LabelTrack, threshold: float = 0.5) -> np.ndarray:
    """Start frames of runs where the model's call for a class differs from a reviewed human label."""
    if not pred.classes:
        return np.zeros(0, np.int64)
    diff = np.zeros(pred.frame_count, bool)
    for k, cls in enumerate(pred.classes):
        col = pred.probs[:, k]
        valid = ~np.isnan(col) & labels.reviewed
        model_pos = col >= threshold
        diff |= valid & (model_pos != labels.human_positive(cls))
    starts = np.flatnonzero(diff & ~np.concatenate([[False], diff[:-1]]))
    return starts


def low_confidence_starts(pred: PredictionTrack, level: float = 0.6, min_len: int = 3) -> np.ndarray:
    """Start frames of regions (≥ ``min_len`` frames) whose normalised entropy is at least ``level``."""
    u = pred.uncertainty()
    low = np.nan_to_num(u, nan=0.0) >= level
    starts, out = np.flatnonzero(low & ~np.concatenate([[False], low[:-1]])), []
    for s in starts:
        e = s
        while e < len(low) and low[e]:
            e += 1
        if e - s >= min_len:
            out.append(s)
    return np.asarray(out, np.int64)


def next_after(starts: np.ndarray, current: int, forward: bool = True) -> int | None:
    if starts.size == 0:
        return None
    if forward:
        later = starts[starts > current]
        return int(later[0]) if later.size else None
    earlier = starts[starts < current]
    return int(earlier[-1]) if earlier.size else None
