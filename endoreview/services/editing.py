"""Correcting labels: mask geometry and one editing service whose every method is one undoable, audited action.

Mask geometry (numpy + OpenCV, no Qt, no database): masks are ``uint8[H, W]`` 0/1 arrays in original-frame pixels;
in the store they are COCO RLE dicts (``docs/interfaces.md``). :func:`paint_stroke` (brush / eraser),
:func:`fill_polygon`, :func:`fill_holes`, :func:`grow_shrink` (RLE: :mod:`core_model.contract`).

:class:`EditingService` wraps a :class:`~endoreview.store.Store` with the actions of the correction tools: set a
frame's mask (a brush stroke, an erase, a polygon, fill-hole, grow/shrink, a copy from the neighbouring frame),
draw / move / resize / re-class / delete boxes, mark / resize / split / merge / delete segments, accept / edit /
reject model suggestions (with a reason from :data:`REJECT_REASONS`), bulk-accept a frame range above a score, set
the video class and the video's review status. Every method is one transaction = one audited change set, pushed on
the service's single command stack: :meth:`EditingService.undo` reverts the last action as a new audited change
set, :meth:`EditingService.redo` reverts that undo.

Keyframes: a label a reviewer made or judged by hand (state manual / edited / accepted, origin neither
``propagated`` nor ``interpolated``). Propagation and interpolation (:mod:`endoreview.services.propagation`) never
overwrite a keyframe. Hand-editing a propagated or interpolated label turns it into a keyframe (origin ``drawn``).
Editing a model suggestion keeps its link to the model (state ``edited``; the audit log keeps what it said).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from core_model.contract import rle_decode, rle_encode
from endoreview.store.records import (
    Label,
    LabelKind,
    LabelOrigin,
    NewLabel,
    ReviewState,
    ReviewStatus,
)

if TYPE_CHECKING:
    from endoreview.store import Store

log = logging.getLogger(__name__)

Point = tuple[float, float]

REJECT_REASONS: tuple[str, ...] = (
    "not a lesion (false positive)",
    "wrong class",
    "wrong extent / outline",
    "poor image quality",
    "duplicate",
    "other",
)
HUMAN_STATES = (ReviewState.MANUAL, ReviewState.EDITED, ReviewState.ACCEPTED)
DERIVED_ORIGINS = (LabelOrigin.PROPAGATED, LabelOrigin.INTERPOLATED)
# what an edit (:meth:`EditingService._like`) keeps of the label it replaces
_COPIED_BY_EDIT = ("video_id", "kind", "class_name", "origin", "frame", "start_frame", "end_frame", "rle", "bbox",
                   "track_id", "score", "model_version_id", "run_id")  # fmt: skip


def empty_mask(height: int, width: int) -> np.ndarray:
    return np.zeros((int(height), int(width)), np.uint8)


def paint_stroke(mask: np.ndarray, points: Sequence[Point], radius: float, value: int = 1) -> np.ndarray:
    """Paint (``value=1``) or erase (``value=0``) a round brush of ``radius`` px along ``points``."""
    import cv2

    out = np.ascontiguousarray(mask, np.uint8).copy()
    if not len(points):
        return out
    r = max(1, int(round(radius)))
    pts = [(int(round(x)), int(round(y))) for x, y in points]
    cv2.circle(out, pts[0], r, int(value), -1, lineType=cv2.LINE_8)
    for a, b in zip(pts, pts[1:]):
        cv2.line(out, a, b, int(value), 2 * r, lineType=cv2.LINE_8)
        cv2.circle(out, b, r, int(value), -1, lineType=cv2.LINE_8)
    return out


def fill_polygon(mask: np.ndarray, points: Sequence[Point], value: int = 1) -> np.ndarray:
    """Fill the closed polygon through ``points`` (at least 3) with ``value``."""
    import cv2

    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    out = np.ascontiguousarray(mask, np.uint8).copy()
    poly = np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(out, [poly], int(value))
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every background region not connected to the image border."""
    import cv2

    m = (np.asarray(mask) > 0).astype(np.uint8)
    h, w = m.shape
    padded = np.zeros((h + 2, w + 2), np.uint8)
    padded[1:-1, 1:-1] = m
    flood = padded.copy()
    ff_mask = np.zeros((h + 4, w + 4), np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 2)
    holes = flood[1:-1, 1:-1] == 0
    return (m | holes).astype(np.uint8)


def grow_shrink(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow (``pixels > 0``) or shrink (``< 0``) the mask by ``|pixels|`` with a round structuring element."""
    import cv2

    m = (np.asarray(mask) > 0).astype(np.uint8)
    n = int(pixels)
    if n == 0:
        return m
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(n) + 1, 2 * abs(n) + 1))
    return (cv2.dilate(m, k) if n > 0 else cv2.erode(m, k)).astype(np.uint8)


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """Tight box ``(x0, y0, x1, y1)`` (exclusive ends) of a mask, None when empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


# ---------------------------------------------------------------------------------------------------------- labels
def is_keyframe(label: Label) -> bool:
    """A label a human drew or judged (anchors propagation / interpolation, never overwritten by them)."""
    return label.state in HUMAN_STATES and label.origin not in DERIVED_ORIGINS


def acted_on(
    suggestions: list[Label], point: Point | None, segments: Callable[[], list[Label]]
) -> list[Label]:
    """What a review action (accept, reject, edit) at ``point`` acts on: the ``suggestions`` under the point, else
    all of them (no point, or it hits none), else the suggested ``segments()`` covering the frame."""
    if point is not None:
        hit = [x for x in suggestions if point_in_label(x, *point)]
        if hit:
            return hit
    if suggestions:
        return suggestions
    return [x for x in segments() if x.state == ReviewState.SUGGESTED]


def point_in_label(label: Label, x: float, y: float) -> bool:
    if label.bbox is not None:
        x0, y0, x1, y1 = label.bbox
        return x0 <= x < x1 and y0 <= y < y1
    if label.rle is not None:
        m = rle_decode(label.rle)
        xi, yi = int(x), int(y)
        return 0 <= yi < m.shape[0] and 0 <= xi < m.shape[1] and bool(m[yi, xi])
    return False


class EditingService:
    """The correction tools' actions over a store; one command stack for undo/redo (see module docstring)."""

    def __init__(self, store: Store, max_undo: int = 500) -> None:
        self.store = store
        self.max_undo = max_undo
        # (change set, summary, (video id, status to restore) for review-status steps)
        self._undo: list[tuple[int, str, tuple[int, str] | None]] = []
        self._redo: list[tuple[int, str, tuple[int, str] | None]] = []

    # ------------------------------------------------------------------ reading what an action acts on
    def label(self, label_id: int) -> Label:
        """The label as stored now (the UI's copy may be older than an edit made since)."""
        return self.store.get_label(label_id)

    def labels(self, label_ids: Sequence[int]) -> list[Label]:
        return self.store.labels_by_id(list(label_ids))

    # ------------------------------------------------------------------ command stack
    def record(self, summary: str, status: tuple[int, str] | None = None) -> None:
        """Push this thread's last change set on the stack as one action named ``summary``."""
        cs = self.store.last_change_id()
        if cs is None or (self._undo and self._undo[-1][0] == cs):
            return  # the action changed nothing
        self._undo.append((cs, summary, status))
        del self._undo[: -self.max_undo]
        self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> str | None:
        """Revert the last action (stored and audited as an ``Undo: …`` change set); returns its summary."""
        return self._step(self._undo, self._redo, "Undo")

    def redo(self) -> str | None:
        return self._step(self._redo, self._undo, "Redo")

    def _step(self, stack: list, other: list, verb: str) -> str | None:
        """Undo (or redo) the top of ``stack`` as a change set of its own and push what reverts it onto ``other``."""
        if not stack:
            return None
        cs, summary, status = stack[-1]
        if status is not None:
            stack.pop()
            other.append((cs, summary, self._restore_status(*status)))
        else:
            done = self.store.undo(cs, summary=f"{verb}: {summary}")
            stack.pop()
            other.append((done.id, summary, None))
        return f"{verb}: {summary}"

    def _restore_status(self, video_id: int, status: str) -> tuple[int, str]:
        """Undo/redo of a review-status step: set the status back (an audited change of its own) and return
        what to restore the other way. ``Store.undo`` refuses a second undo of one video row, whose version the
        first undo moved on."""
        before = str(self.store.get_video(video_id).review_status)
        self.store.update_video(video_id, None, review_status=ReviewStatus(status))
        return video_id, before

    # ------------------------------------------------------------------ reading
    def frame_labels(self, video_id: int, frame: int) -> list[Label]:
        return self.store.labels_for_frame(video_id, frame)

    def video_labels(self, video_id: int, **filters: Any) -> list[Label]:
        return self.store.labels_for_video(video_id, **filters)

    # ------------------------------------------------------------------ creating and editing labels as given
    def create(self, labels: NewLabel | Sequence[NewLabel], summary: str | None = None) -> list[Label]:
        """Create labels (a drawn mask, a box, a segment, a video class …) in one action."""
        items = [labels] if isinstance(labels, NewLabel) else list(labels)
        summary = summary or f"Add {len(items)} label(s)"
        out = self.store.add_labels(items, summary)
        self.record(summary)
        return out

    def add_mask(self, video_id: int, frame: int, rle: dict, class_name: str = "polyp", **kw: Any) -> Label:
        return self.create(
            NewLabel(video_id, LabelKind.MASK, class_name, frame=frame, rle=rle, **kw), "Draw mask"
        )[0]

    def edit(self, label: Label, **changes: Any) -> Label:
        """Change class, frame(s), ``rle``, ``bbox``, ``track_id`` or ``reason`` of ``label`` as last seen (a
        suggestion becomes ``edited``)."""
        out = self.store.edit_label(label.id, label.version, **changes)
        self.record(f"Edit {label.kind}")
        return out

    def mask_target(self, video_id: int, frame: int, class_name: str) -> Label | None:
        """The mask a stroke on ``frame`` changes: the reviewer's own, else the best live suggestion."""
        masks = [
            x
            for x in self.store.labels_for_frame(video_id, frame)
            if x.kind == LabelKind.MASK and x.class_name == class_name and x.state != ReviewState.REJECTED
        ]
        human = [x for x in masks if x.state != ReviewState.SUGGESTED]
        if human:
            return human[0]
        return max(masks, key=lambda x: x.score or 0.0) if masks else None

    def frame_mask(self, video_id: int, frame: int, class_name: str, size: tuple[int, int]) -> np.ndarray:
        """The editable mask of ``frame`` (``size`` = (h, w)), empty when there is none."""
        t = self.mask_target(video_id, frame, class_name)
        return rle_decode(t.rle) if t is not None and t.rle else empty_mask(*size)

    # ------------------------------------------------------------------ masks
    def set_mask(
        self,
        video_id: int,
        frame: int,
        mask: np.ndarray,
        class_name: str = "polyp",
        summary: str = "Brush stroke",
        target_id: int | None | str = "auto",
    ) -> Label | None:
        """Make ``mask`` the mask of ``class_name`` on ``frame`` (one action). Returns the label (None if erased).

        ``target_id`` is the mask the reviewer saw and changed (None: none, a new mask); ``"auto"`` picks
        :meth:`mask_target` (the reviewer's own mask, else the best open suggestion)."""
        if target_id == "auto":
            target = self.mask_target(video_id, frame, class_name)
        else:
            target = None if target_id is None else self.label(int(target_id))
        empty = not np.asarray(mask).any()
        out: Label | None = None
        if target is None:
            if empty:
                return None
            new = NewLabel(
                video_id, LabelKind.MASK, class_name, frame=frame, rle=rle_encode(mask), track_id=1
            )
            out = self.store.add_labels([new], summary)[0]
        elif empty and target.state == ReviewState.SUGGESTED:
            self.store.set_label_states(
                [target.id],
                ReviewState.REJECTED,
                expected_versions={target.id: target.version},
                reason="erased by the reviewer",
                summary=summary,
            )
        elif empty:
            self.store.delete_labels([target.id], {target.id: target.version})
        else:
            out = self._swap(target, summary, rle=rle_encode(mask))
        self.record(summary)
        return out

    def copy_mask(self, video_id: int, src: int, dst: int, class_name: str = "polyp") -> Label | None:
        """Copy the mask of frame ``src`` onto frame ``dst`` (replacing what ``dst`` had)."""
        t = self.mask_target(video_id, src, class_name)
        if t is None or not t.rle:
            raise ValueError(f"frame {src + 1} has no {class_name} mask to copy")
        return self.set_mask(video_id, dst, rle_decode(t.rle), class_name, f"Copy mask from frame {src + 1}")

    # ------------------------------------------------------------------ boxes
    def next_track_id(self, video_id: int, kind: str = "box") -> int:
        ids = [x.track_id or 0 for x in self.store.labels_for_video(video_id, kinds=[kind])]
        return max(ids, default=0) + 1

    def add_box(
        self,
        video_id: int,
        frame: int,
        bbox: Sequence[float],
        class_name: str = "polyp",
        track_id: int | None = None,
    ) -> Label:
        tid = track_id if track_id is not None else self.next_track_id(video_id)
        box = tuple(float(v) for v in bbox)
        new = NewLabel(video_id, LabelKind.BOX, class_name, frame=frame, bbox=box, track_id=tid)  # type: ignore[arg-type]
        out = self.store.add_labels([new], "Draw box")[0]
        self.record("Draw box")
        return out

    def set_box(self, label: Label, bbox: Sequence[float], summary: str = "Move box") -> Label:
        """Move or resize a box; a propagated / interpolated box becomes a keyframe."""
        out = self._swap(label, summary, bbox=tuple(float(v) for v in bbox))
        self.record(summary)
        return out

    def set_class(self, label: Label, class_name: str) -> Label:
        out = self._swap(label, f"Change class to {class_name}", class_name=class_name)
        self.record(f"Change class to {class_name}")
        return out

    def delete(self, labels: Iterable[Label]) -> int:
        """Delete reviewer-made labels; model suggestions are rejected instead (they stay as training signal)."""
        labels = list(labels)
        preds = [x for x in labels if x.origin == LabelOrigin.PREDICTED]
        own = [x for x in labels if x.origin != LabelOrigin.PREDICTED]
        n = 0
        if own:
            n += self.store.delete_labels([x.id for x in own], {x.id: x.version for x in own})
            self.record(f"Delete {len(own)} label(s)")
        if preds:
            n += len(self.reject(preds, "deleted by the reviewer"))
        return n

    # ------------------------------------------------------------------ segments
    def add_segment(self, video_id: int, start: int, end: int, class_name: str = "polyp") -> Label:
        a, b = sorted((int(start), int(end)))
        new = NewLabel(video_id, LabelKind.SEGMENT, class_name, start_frame=a, end_frame=b)
        out = self.store.add_labels([new], f"Mark {class_name} segment")[0]
        self.record(f"Mark {class_name} segment")
        return out

    def segments_at(self, video_id: int, frame: int) -> list[Label]:
        return [
            x
            for x in self.store.labels_for_video(video_id, kinds=[LabelKind.SEGMENT])
            if x.start_frame is not None and x.start_frame <= frame < (x.end_frame or 0)
        ]

    def set_segment_bounds(self, label: Label, start: int, end: int) -> Label:
        a, b = sorted((int(start), int(end)))
        out = self._swap(label, "Move segment edge", start_frame=a, end_frame=b)
        self.record("Move segment edge")
        return out

    def _like(self, label: Label, **changes: Any) -> NewLabel:
        """An edited copy of ``label`` to replace it with: its geometry, class, track and model link (not its reason
        or provenance), in the state an edit leaves (:meth:`ReviewState.after_edit`), with ``changes`` applied."""
        fields: dict[str, Any] = {k: getattr(label, k) for k in _COPIED_BY_EDIT}
        fields["state"] = ReviewState(label.state).after_edit()
        fields.update(changes)
        return NewLabel(**fields)

    def _swap(self, label: Label, summary: str, **changes: Any) -> Label:
        """Replace ``label`` by an edited copy in one action (a model suggestion stays linked to its model as
        ``edited``; a propagated / interpolated label becomes a keyframe). Edits replace rows rather than update
        them so that a chain of undos over the same object always finds each row as its action left it."""
        if label.origin in DERIVED_ORIGINS:
            changes.setdefault("origin", LabelOrigin.DRAWN)
        return self._replace([label], [self._like(label, **changes)], summary)[0]

    def _replace(self, old: Sequence[Label], new: list[NewLabel], summary: str) -> list[Label]:
        """Replace the labels ``old`` (as last seen: a newer version is refused) by ``new`` in one audited change
        set named ``summary``."""
        return self.store.replace_labels(
            [x.id for x in old], new, expected_versions={x.id: x.version for x in old}, summary=summary
        )

    def split_segment(self, label: Label, at: int) -> list[Label]:
        if not (label.start_frame or 0) < at < (label.end_frame or 0):
            raise ValueError(f"split point frame {at + 1} is not inside the segment")
        parts = [self._like(label, end_frame=at), self._like(label, start_frame=at)]
        out = self._replace([label], parts, "Split segment")
        self.record("Split segment")
        return out

    def merge_segments(self, labels: Sequence[Label]) -> Label:
        labels = sorted(labels, key=lambda x: x.start_frame or 0)
        if len(labels) < 2:
            raise ValueError("select at least two segments to merge")
        a = min(x.start_frame or 0 for x in labels)
        b = max(x.end_frame or 0 for x in labels)
        merged = self._like(labels[0], start_frame=a, end_frame=b)
        out = self._replace(labels, [merged], f"Merge {len(labels)} segments")[0]
        self.record(f"Merge {len(labels)} segments")
        return out

    # ------------------------------------------------------------------ reviewing suggestions
    def suggestions_at(self, video_id: int, frame: int, point: Point | None = None) -> list[Label]:
        """The model's open suggestions under ``point`` on ``frame`` (all of the frame's without a point;
        the suggested segments covering the frame when it has no mask or box suggestions)."""
        sug = [x for x in self.store.labels_for_frame(video_id, frame) if x.state == ReviewState.SUGGESTED]
        return acted_on(sug, point, lambda: self.segments_at(video_id, frame))

    def accept(self, labels: Iterable[Label]) -> list[Label]:
        labels = list(labels)
        if not labels:
            return []
        out = self.store.set_label_states(
            [x.id for x in labels], ReviewState.ACCEPTED, expected_versions={x.id: x.version for x in labels}
        )
        self.record(f"Accept {len(labels)} suggestion(s)")
        return out

    promote = accept  # a predicted box becomes a label by accepting it

    def reject(self, labels: Iterable[Label], reason: str | None = None) -> list[Label]:
        labels = list(labels)
        if not labels:
            return []
        out = self.store.set_label_states(
            [x.id for x in labels],
            ReviewState.REJECTED,
            expected_versions={x.id: x.version for x in labels},
            reason=reason,
        )
        self.record(f"Reject {len(labels)} suggestion(s)")
        return out

    def bulk_accept(
        self,
        video_id: int,
        *,
        kinds: Iterable[str] | None = None,
        frames: tuple[int, int] | None = None,
        min_score: float | None = None,
    ) -> int:
        """Accept every open suggestion of a video (optionally by kind, frame range ``[a, b)``, minimum score).

        For scripts and the command line, which see everything; the review session accepts exactly the
        suggestions the reviewer can see instead (:meth:`accept` with their versions)."""
        n = self.store.accept_suggestions(video_id, kinds=kinds, frames=frames, min_score=min_score)
        if n:
            self.record(f"Accept {n} suggestion(s)")
        return n

    # ------------------------------------------------------------------ video
    def set_video_class(self, video_id: int, class_name: str) -> Label:
        old = [
            x
            for x in self.store.labels_for_video(video_id, kinds=[LabelKind.VIDEO_CLASS])
            if x.state in HUMAN_STATES
        ]
        new = NewLabel(video_id, LabelKind.VIDEO_CLASS, class_name)
        out = self._replace(old, [new], f"Set video class {class_name}")[0]
        self.record(f"Set video class {class_name}")
        return out

    def set_review_status(self, video_id: int, status: ReviewStatus | str) -> None:
        st = ReviewStatus(status)
        before = str(self.store.get_video(video_id).review_status)
        self.store.update_video(video_id, None, review_status=st)
        self.record(f"Mark video {st.value.replace('_', ' ')}", status=(video_id, before))
