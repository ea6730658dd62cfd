"""Reviewing and editing labels, with undo/redo, as one service per open review session.

Every method is one user action = one transaction = one audited change set. ``undo()`` reverts the last action
of this session as a new audited change (so the audit log shows both); ``redo()`` reverts that undo. A write
that races with another workstation's edit raises :class:`endoreview.store.StaleWriteError` ("changed by X at
T — reload"); pass the label (or video) as the caller last saw it so its version is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from endoreview.store import Store
from endoreview.store.records import (
    Label,
    LabelKind,
    LabelOrigin,
    NewLabel,
    ReviewState,
    TimelineSummary,
)


class LabelService:
    def __init__(self, store: Store, max_undo: int = 200):
        self.store = store
        self.max_undo = max_undo
        self._undo: list[int] = []
        self._redo: list[int] = []

    # ------------------------------------------------------------------ reading
    def frame_labels(self, video_id: int, frame: int) -> list[Label]:
        return self.store.labels_for_frame(video_id, frame)

    def video_labels(self, video_id: int, **filters: Any) -> list[Label]:
        return self.store.labels_for_video(video_id, **filters)

    def timeline(self, video_id: int) -> TimelineSummary:
        """Per-frame counts by kind and review state plus segments (fast for 100k-frame videos)."""
        return self.store.timeline_summary(video_id)

    # ------------------------------------------------------------------ undo bookkeeping
    def _done(self, new_action: bool = True) -> None:
        cs = self.store.last_change_id()
        if cs is None:
            return
        self._undo.append(cs)
        del self._undo[: -self.max_undo]
        if new_action:
            self._redo.clear()

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> str | None:
        """Undo this session's last action; returns its summary (None when there is nothing to undo)."""
        if not self._undo:
            return None
        cs = self._undo[-1]
        undone = self.store.undo(cs)
        self._undo.pop()
        self._redo.append(undone.id)
        return undone.summary

    def redo(self) -> str | None:
        if not self._redo:
            return None
        cs = self._redo[-1]
        redone = self.store.undo(
            cs, summary=f"Redo: {self.store.get_change_set(cs).summary.removeprefix('Undo: ')}"
        )
        self._redo.pop()
        self._undo.append(redone.id)
        return redone.summary

    # ------------------------------------------------------------------ actions
    def create(self, labels: NewLabel | Sequence[NewLabel], summary: str | None = None) -> list[Label]:
        """Create labels (a drawn mask, a box, a segment, a video class …) in one action."""
        items = [labels] if isinstance(labels, NewLabel) else list(labels)
        out = self.store.add_labels(items, summary or f"Add {len(items)} label(s)")
        self._done()
        return out

    def add_mask(self, video_id: int, frame: int, rle: dict, class_name: str = "polyp", **kw: Any) -> Label:
        return self.create(
            NewLabel(video_id, LabelKind.MASK, class_name, frame=frame, rle=rle, **kw), "Draw mask"
        )[0]

    def add_box(
        self, video_id: int, frame: int, bbox: Sequence[float], class_name: str = "polyp", **kw: Any
    ) -> Label:
        box = tuple(float(v) for v in bbox)
        return self.create(
            NewLabel(video_id, LabelKind.BOX, class_name, frame=frame, bbox=box, **kw), "Draw box"
        )[0]  # type: ignore[arg-type]

    def add_segment(self, video_id: int, start: int, end: int, class_name: str = "polyp", **kw: Any) -> Label:
        new = NewLabel(video_id, LabelKind.SEGMENT, class_name, start_frame=start, end_frame=end, **kw)
        return self.create(new, "Mark segment")[0]

    def set_video_class(self, video_id: int, class_name: str) -> Label:
        """The reviewer's class for the whole video (one action); earlier reviewer-made video classes go."""
        old = [
            lab
            for lab in self.store.labels_for_video(video_id, kinds=[LabelKind.VIDEO_CLASS])
            if lab.state in (ReviewState.MANUAL, ReviewState.EDITED, ReviewState.ACCEPTED)
        ]
        if len(old) == 1 and old[0].state != ReviewState.ACCEPTED:
            out = self.store.edit_label(old[0].id, old[0].version, class_name=class_name)
        else:
            new = NewLabel(video_id, LabelKind.VIDEO_CLASS, class_name, origin=LabelOrigin.DRAWN)
            out = self.store.replace_labels(
                [x.id for x in old],
                [new],
                expected_versions={x.id: x.version for x in old},
                summary="Set video class",
            )[0]
        self._done()
        return out

    def replace(
        self, remove: Iterable[Label], add: Sequence[NewLabel], summary: str = "Replace labels"
    ) -> list[Label]:
        """Swap labels in one undoable action (e.g. a redrawn mask replacing several pieces)."""
        remove = list(remove)
        out = self.store.replace_labels(
            [x.id for x in remove],
            list(add),
            expected_versions={x.id: x.version for x in remove},
            summary=summary,
        )
        self._done()
        return out

    def accept(self, labels: Iterable[Label]) -> list[Label]:
        labels = list(labels)
        out = self.store.set_label_states(
            [x.id for x in labels], ReviewState.ACCEPTED, expected_versions={x.id: x.version for x in labels}
        )
        self._done()
        return out

    def reject(self, labels: Iterable[Label], reason: str | None = None) -> list[Label]:
        """Reject labels (a rejected prediction becomes a negative frame in the training manifest)."""
        labels = list(labels)
        out = self.store.set_label_states(
            [x.id for x in labels],
            ReviewState.REJECTED,
            expected_versions={x.id: x.version for x in labels},
            reason=reason,
        )
        self._done()
        return out

    def edit(self, label: Label, **changes: Any) -> Label:
        """Change class, frame(s), ``rle``, ``bbox``, ``track_id`` or ``reason`` of ``label`` as last seen."""
        out = self.store.edit_label(label.id, label.version, **changes)
        self._done()
        return out

    def delete(self, labels: Iterable[Label]) -> int:
        labels = list(labels)
        n = self.store.delete_labels([x.id for x in labels], {x.id: x.version for x in labels})
        self._done()
        return n

    def bulk_accept(
        self,
        video_id: int,
        *,
        kinds: Iterable[str] | None = None,
        frames: tuple[int, int] | None = None,
        min_score: float | None = None,
    ) -> int:
        """Accept every remaining suggestion of a video (optionally by kind, frame range, minimum score)."""
        n = self.store.accept_suggestions(video_id, kinds=kinds, frames=frames, min_score=min_score)
        self._done()
        return n
