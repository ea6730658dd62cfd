"""The review queue: videos and stretches of frames ordered by how unsure the model is.

Per-frame signals (all in [0, 1], from the latest prediction run of a video):

* ``entropy``: normalised entropy of the class probabilities;
* ``margin``: ``1 - (p_top - p_second)`` (a single class is read as ``p`` vs ``1 - p``);
* ``flicker``: how much the probabilities jump from the neighbouring frames (temporal instability);
* ``disagreement``: classification vs detection/segmentation — ``|p(abnormal class) - best box/mask score|``.

:func:`frame_uncertainty` combines them (weights in :data:`WEIGHTS`); :func:`uncertain_regions` cuts a video into
regions above a level; :class:`ReviewQueue` ranks the regions of every not-yet-reviewed video of a project and
walks them with :meth:`ReviewQueue.next_item` / :meth:`ReviewQueue.previous_item`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from endoreview.store.records import ReviewStatus

if TYPE_CHECKING:
    from endoreview.store import Store

WEIGHTS: Mapping[str, float] = {"entropy": 0.35, "margin": 0.25, "flicker": 0.2, "disagreement": 0.2}
NEGATIVE_CLASSES = ("normal", "background", "negative")


@dataclass(frozen=True)
class Signals:
    entropy: np.ndarray  # [T]
    margin: np.ndarray
    flicker: np.ndarray
    disagreement: np.ndarray

    def combined(self, weights: Mapping[str, float] = WEIGHTS) -> np.ndarray:
        total = sum(weights.values())
        return sum(np.nan_to_num(getattr(self, k)) * w for k, w in weights.items()) / total


def signals(probs: np.ndarray, classes: Sequence[str], det_score: np.ndarray | None = None) -> Signals:
    """Per-frame signals from ``probs`` ``[T, C]`` (NaN rows = no prediction) and ``det_score`` ``[T]``."""
    p = np.asarray(probs, np.float64)
    t = p.shape[0]
    valid = ~np.isnan(p).all(axis=1) if p.size else np.zeros(t, bool)
    q = np.clip(np.nan_to_num(p, nan=0.0), 1e-6, 1.0)
    if q.shape[1] == 1:
        q = np.concatenate([q, 1.0 - q], axis=1)
    q = q / q.sum(axis=1, keepdims=True)
    ent = -(q * np.log(q)).sum(axis=1) / math.log(max(q.shape[1], 2))
    srt = np.sort(q, axis=1)
    margin = 1.0 - (srt[:, -1] - srt[:, -2])
    diff = np.abs(np.diff(q, axis=0)).max(axis=1) if t > 1 else np.zeros(0)
    flick = np.zeros(t)
    if t > 1:
        flick[1:] = np.maximum(flick[1:], diff)
        flick[:-1] = np.maximum(flick[:-1], diff)
    dis = np.zeros(t)
    pos = [k for k, c in enumerate(classes) if c.lower() not in NEGATIVE_CLASSES]
    if det_score is not None and pos:
        p_pos = np.nan_to_num(p[:, pos], nan=0.0).max(axis=1)
        dis = np.abs(p_pos - np.nan_to_num(np.asarray(det_score, np.float64), nan=0.0))
    for a in (ent, margin, flick, dis):
        a[~valid] = 0.0
    return Signals(ent, margin, np.clip(flick, 0, 1), np.clip(dis, 0, 1))


@dataclass(frozen=True)
class QueueItem:
    video_id: int
    start: int
    end: int  # exclusive
    score: float  # mean combined uncertainty over the region
    reason: str  # the strongest signal, for the reviewer


def uncertain_regions(
    sig: Signals, video_id: int, level: float = 0.45, min_len: int = 3, merge_gap: int = 5
) -> list[QueueItem]:
    """Regions (≥ ``min_len`` frames, gaps ≤ ``merge_gap`` bridged) whose combined uncertainty ≥ ``level``."""
    u = sig.combined()
    on = u >= level
    idx = np.flatnonzero(on)
    if idx.size == 0:
        return []
    runs, a, b = [], int(idx[0]), int(idx[0])
    for i in idx[1:]:
        if i - b <= merge_gap + 1:
            b = int(i)
        else:
            runs.append((a, b + 1))
            a = b = int(i)
    runs.append((a, b + 1))
    out = []
    for s, e in runs:
        if e - s < min_len:
            continue
        parts = {k: float(np.mean(getattr(sig, k)[s:e])) for k in WEIGHTS}
        out.append(QueueItem(video_id, s, e, float(u[s:e].mean()), max(parts, key=parts.get)))
    return out


def video_signals(store: Store, video_id: int) -> Signals | None:
    """Signals of the latest prediction run of ``video_id`` (None when it was never analysed)."""
    runs = store.list_prediction_runs(video_id)
    if not runs:
        return None
    run = runs[-1]
    n = store.get_video(video_id).frame_count
    summary = store.run_summary(run.id)  # one row: per-frame probabilities and best detection score
    classes = sorted(summary.classes)
    m = min(n, summary.probs.shape[0])
    probs = np.full((n, len(classes)), np.nan)
    for k, c in enumerate(classes):
        probs[:m, k] = summary.probs[:m, summary.classes.index(c)]
    det = np.zeros(n)
    det[:m] = np.nan_to_num(summary.best[:m], nan=0.0)
    return signals(probs, classes, det)


class ReviewQueue:
    """Uncertain regions of the not-yet-reviewed videos of a project, most uncertain first."""

    def __init__(self, store: Store, project_id: int, level: float = 0.45) -> None:
        self.store, self.project_id, self.level = store, project_id, level
        self.items: list[QueueItem] = []
        self.position = -1

    def build(self) -> list[QueueItem]:
        items: list[QueueItem] = []
        for v in self.store.list_videos(self.project_id):
            if v.review_status == ReviewStatus.REVIEWED:
                continue
            sig = video_signals(self.store, v.id)
            if sig is not None:
                items += uncertain_regions(sig, v.id, self.level)
        items.sort(key=lambda it: (-it.score, it.video_id, it.start))
        self.items, self.position = items, -1
        return items

    def next_item(self) -> QueueItem | None:
        if self.position + 1 >= len(self.items):
            return None
        self.position += 1
        return self.items[self.position]

    def previous_item(self) -> QueueItem | None:
        if self.position <= 0:
            return None
        self.position -= 1
        return self.items[self.position]
