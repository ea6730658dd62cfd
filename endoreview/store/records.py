"""What leaves the store: plain frozen dataclasses and string enums (no SQLAlchemy objects ever escape).

Times are timezone-aware UTC ``datetime`` objects. Frames are 0-based; a segment is ``[start_frame, end_frame)``.
Masks are COCO RLE dicts ``{"size": [h, w], "counts": "<str>"}``; boxes are ``(x0, y0, x1, y1)`` in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np


class LabelKind(StrEnum):
    VIDEO_CLASS = "video_class"  # one class for the whole video
    SEGMENT = "segment"  # [start_frame, end_frame) with a class
    MASK = "mask"  # per-frame mask (RLE) with a class and track id
    BOX = "box"  # per-frame box with a class and track id


class ReviewState(StrEnum):
    SUGGESTED = "suggested"  # proposed by a model, nobody has looked yet
    ACCEPTED = "accepted"  # a reviewer agreed with a suggestion as it was
    EDITED = "edited"  # a reviewer changed a suggestion (geometry or class)
    REJECTED = "rejected"  # a reviewer said the suggestion is wrong (a negative for training)
    MANUAL = "manual"  # created by a reviewer from scratch

    def can_become(self, new: ReviewState | str) -> bool:
        """Whether a review action may move a label from this state to ``new`` (:data:`REVIEW_TRANSITIONS`)."""
        return ReviewState(new) in REVIEW_TRANSITIONS[self]

    def after_edit(self) -> ReviewState:
        """The state a label is left in when a reviewer edits it (class, frames, mask, box): a reviewer's own label
        stays ``manual``, an edited one stays ``edited``, anything else (a suggestion, an accepted label) becomes
        ``edited``."""
        return self if self in (ReviewState.MANUAL, ReviewState.EDITED) else ReviewState.EDITED


# Who may move where by a review action (undo restores any earlier state as a change of its own): a suggestion is
# accepted, edited or rejected; an accepted one can still be edited or rejected; a rejected one is final (a
# negative for training) until undone; a reviewer's own label stays manual when edited and is rejected, not
# accepted.
REVIEW_TRANSITIONS: dict[ReviewState, frozenset[ReviewState]] = {
    ReviewState.SUGGESTED: frozenset({ReviewState.ACCEPTED, ReviewState.EDITED, ReviewState.REJECTED}),
    ReviewState.ACCEPTED: frozenset({ReviewState.EDITED, ReviewState.REJECTED}),
    ReviewState.EDITED: frozenset({ReviewState.EDITED, ReviewState.REJECTED}),
    ReviewState.MANUAL: frozenset({ReviewState.MANUAL, ReviewState.REJECTED}),
    ReviewState.REJECTED: frozenset(),
}


class LabelOrigin(StrEnum):
    DRAWN = "drawn"  # drawn by a user
    KEYFRAME = "keyframe"  # a user keyframe (interpolation anchor)
    INTERPOLATED = "interpolated"  # interpolated between keyframes
    PROPAGATED = "propagated"  # propagated from a neighbouring frame
    IMPORTED = "imported"  # imported from a file (COCO, CVAT …)
    PREDICTED = "predicted"  # predicted by a model version


class ReviewStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    IN_REVIEW = "in_review"
    REVIEWED = "reviewed"


class RunState(StrEnum):
    """State of a prediction run."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TASKS = ("video_class", "segment", "mask", "box")


@dataclass(frozen=True)
class Reviewer:
    id: int
    name: str
    role: str
    created_at: datetime


@dataclass(frozen=True)
class LabelClass:
    id: int
    name: str
    color: str  # "#rrggbb"
    shortcut: str | None
    tasks: tuple[str, ...]  # subset of TASKS


@dataclass(frozen=True)
class LabelSet:
    id: int
    name: str
    classes: tuple[LabelClass, ...]

    def classes_for(self, task: str) -> tuple[LabelClass, ...]:
        return tuple(c for c in self.classes if task in c.tasks)


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    description: str
    label_set_id: int
    created_at: datetime
    version: int


@dataclass(frozen=True)
class Video:
    id: int
    project_id: int
    path: str  # relative to the workstation's library root when path_is_relative, else absolute
    path_is_relative: bool
    content_hash: str
    size_bytes: int
    frame_count: int
    fps: float
    width: int
    height: int
    codec: str
    meta: dict[str, Any]
    review_status: ReviewStatus
    assigned_reviewer: str | None
    imported_at: datetime
    removed_at: datetime | None
    version: int
    updated_by: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    architecture: str
    files_dir: str
    parent_id: int | None
    data_snapshot: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any]
    created_at: datetime
    is_active: bool
    notes: str


@dataclass(frozen=True)
class PredictionRun:
    id: int
    video_id: int
    model_version_id: int | None
    state: str  # a RunState value
    params: dict[str, Any]
    started_at: datetime
    finished_at: datetime | None
    frames_done: int


@dataclass(frozen=True)
class Label:
    id: int
    video_id: int
    kind: LabelKind
    class_name: str
    state: ReviewState
    origin: LabelOrigin
    frame: int | None = None  # masks and boxes
    start_frame: int | None = None  # segments
    end_frame: int | None = None  # segments (exclusive)
    rle: dict[str, Any] | None = None  # masks
    bbox: tuple[float, float, float, float] | None = None  # boxes
    track_id: int | None = None
    score: float | None = None
    model_version_id: int | None = None
    run_id: int | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None
    reason: str | None = None
    version: int = 1
    updated_by: str | None = None
    updated_at: datetime | None = None
    #: an imported label's origin: {"source": file, "line"/"field": where in it, "format", "importer": version}
    provenance: dict[str, Any] | None = None


@dataclass(frozen=True)
class NewLabel:
    """A label to create. ``state`` defaults to ``manual`` (or ``suggested`` when origin is ``predicted``)."""

    video_id: int
    kind: LabelKind
    class_name: str
    origin: LabelOrigin = LabelOrigin.DRAWN
    state: ReviewState | None = None
    frame: int | None = None
    start_frame: int | None = None
    end_frame: int | None = None
    rle: dict[str, Any] | None = None
    bbox: tuple[float, float, float, float] | None = None
    track_id: int | None = None
    score: float | None = None
    model_version_id: int | None = None
    run_id: int | None = None
    reason: str | None = None
    provenance: dict[str, Any] | None = None  # imported labels: see Label.provenance


@dataclass(frozen=True)
class FramePrediction:
    """One frame of model output, as :class:`core_model.inference.Predictor` streams it."""

    frame: int
    probs: dict[str, float] = field(default_factory=dict)
    masks: tuple[dict[str, Any], ...] = ()  # {"label", "score", "rle", optional "track_id"}
    boxes: tuple[dict[str, Any], ...] = ()  # {"label", "score", "bbox", optional "track_id"}


@dataclass(frozen=True)
class AuditEntry:
    id: int
    change_set_id: int
    table: str
    row_id: int
    op: str  # insert | update | delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class ChangeSet:
    """One user action: who, on which host, when, and what (a summary); ``entries`` only when asked for."""

    id: int
    actor: str
    host: str
    at: datetime
    summary: str
    video_id: int | None
    undoes_id: int | None
    entries: tuple[AuditEntry, ...] = ()


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    params: dict[str, Any]
    state: JobState
    progress: float
    message: str
    log_path: str | None
    result: dict[str, Any] | None
    pid: int | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, eq=False)
class TimelineSummary:
    """Everything a timeline strip needs for one video, without loading a single mask.

    ``counts[(kind, state)]`` is an ``int32[frame_count]`` array of how many labels of that kind and review
    state sit on each frame (masks and boxes). ``segments`` holds the segment and video-class labels.
    ``runs(kind, state)`` turns a count array into ``[start, end)`` runs of frames that have at least one.
    """

    video_id: int
    frame_count: int
    counts: dict[tuple[str, str], np.ndarray]
    segments: tuple[Label, ...]

    def runs(self, kind: str, state: str | None = None) -> list[tuple[int, int]]:
        if state is None:
            arr = sum(
                (a for (k, _), a in self.counts.items() if k == kind), np.zeros(self.frame_count, np.int32)
            )
        else:
            arr = self.counts.get((kind, state), np.zeros(self.frame_count, np.int32))
        on = np.concatenate([[False], np.asarray(arr) > 0, [False]])
        edges = np.flatnonzero(on[1:] != on[:-1])
        return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]
