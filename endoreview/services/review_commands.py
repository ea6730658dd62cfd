"""The review session's actions as named commands, and the single writer that executes them in order.

A command is a small frozen record naming one user action (``AcceptLabels``, ``AddBox``, ``SetMask`` …) with the
ids and values it needs; ``run(service)`` performs it through
:class:`~endoreview.services.editing.EditingService` (one transaction, one audited change set, one undo step) and
``frames`` says which frames to read back afterwards (``None``: the whole video). :class:`CommandWriter` runs every
command on one worker thread, in the order the reviewer made them, then reads back a :class:`Snapshot` and hands
``(result, snapshot)`` to ``deliver`` (the UI passes "run this on the GUI thread"; tests pass a direct call).

Nothing here imports Qt: the session (:mod:`endoreview.services.review_session`) and tests drive the same code the
editor does.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from endoreview.media.guard import check_off_gui_thread
from endoreview.services.editing import EditingService
from endoreview.store.records import Label, LabelKind, ReviewState, ReviewStatus

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


# ---------------------------------------------------------------------------------------------------- snapshots
@dataclass
class Snapshot:
    """Labels read back after an action: whole video (``full``) or just ``frames`` (plus all segments)."""

    video_id: int
    full: bool
    frames: dict[int, list[Label]] = field(default_factory=dict)
    segments: list[Label] = field(default_factory=list)  # segments and video classes
    window: tuple[int, int] | None = None  # full snapshots: the frames whose open suggestions it holds
    model_frames: np.ndarray | None = None  # full snapshots: frames with any model output, [frame_count] bool


def _frames_of(
    store: Any, video_id: int, a: int, b: int, only: set[int] | None = None
) -> dict[int, list[Label]]:
    """Masks and boxes (labels and open suggestions) on frames [a, b), every asked frame present."""
    per: dict[int, list[Label]] = {f: [] for f in (range(a, b) if only is None else only)}
    for x in store.labels_for_video(video_id, kinds=[LabelKind.MASK, LabelKind.BOX], frames=(a, b)):
        f = int(x.frame)
        if f in per:
            per[f].append(x)
    return per


def read_snapshot(
    store: Any, video_id: int, frames: Sequence[int] | None, window: tuple[int, int] | None = None
) -> Snapshot:
    """Labels after an action. ``frames=None``: every label row of the video and the open suggestions of
    ``window`` only (a procedure's model output is read around the frame on screen, not all at once)."""
    check_off_gui_thread("db", "edit snapshot")
    segs = store.labels_for_video(video_id, kinds=[LabelKind.SEGMENT, LabelKind.VIDEO_CLASS])
    if frames is None:
        per: dict[int, list[Label]] = {}
        for x in store.labels_for_video(video_id, kinds=[LabelKind.MASK, LabelKind.BOX], suggestions=False):
            per.setdefault(int(x.frame), []).append(x)
        video = store.get_video(video_id)
        if window is not None:
            a, b = window
            for x in store.suggestions(video_id, frames=(a, b)):
                per.setdefault(int(x.frame), []).insert(0, x)
        model = np.zeros(video.frame_count, bool)
        for f in store.frames_with_model_output(video_id):
            if 0 <= f < video.frame_count:
                model[f] = True
        for f, labs in per.items():
            if 0 <= f < video.frame_count and any(x.origin == "predicted" for x in labs):
                model[f] = True
        return Snapshot(video_id, True, per, segs, window=window, model_frames=model)
    fs = set(frames)
    if not fs:
        return Snapshot(video_id, False, {}, segs)
    a, b = min(fs), max(fs) + 1
    return Snapshot(video_id, False, _frames_of(store, video_id, a, b, fs), segs)


# ---------------------------------------------------------------------------------------------------- commands
@dataclass(frozen=True)
class Command:
    """One user action. Subclasses set ``name`` (the undo / status-bar text) and implement ``run``."""

    name: ClassVar[str] = "Edit"

    @property
    def title(self) -> str:
        return self.name

    @property
    def frames(self) -> list[int] | None:
        return []

    @property
    def expected(self) -> tuple[Label, ...]:
        """The labels as this command will leave them, where that is known before it runs (a change of review
        state): the session shows them at once, and the saved snapshot (or, if the store refuses, a re-read)
        replaces them."""
        return ()

    def run(self, svc: EditingService) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class LoadVideo(Command):
    """Open a video for review: its label set's classes and its review status (and every label, read back)."""

    name: ClassVar[str] = "Load labels"
    video_id: int

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> dict:
        store = svc.store
        video = store.get_video(self.video_id)
        ls = store.get_label_set(store.get_project(video.project_id).label_set_id)
        return {
            "classes": tuple(c.name for c in ls.classes if {"segment", "mask", "box"} & set(c.tasks)),
            "video_classes": tuple(c.name for c in ls.classes_for("video_class")),
            "status": str(video.review_status),
        }


@dataclass(frozen=True)
class Reload(Command):
    """Re-read every label of the video (new model output arrived, or an edit was refused)."""

    name: ClassVar[str] = "Refresh"
    generation: int = 0

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> int:
        return self.generation


@dataclass(frozen=True)
class SetMask(Command):
    """A brush stroke, an erase, a polygon, fill holes, grow / shrink, clear or copy: the frame's new mask."""

    video_id: int
    frame: int
    mask: np.ndarray = field(compare=False)
    class_name: str
    summary: str
    target_id: int | None = None  # the mask the reviewer saw and changed (None: a new one)

    @property
    def title(self) -> str:
        return self.summary

    @property
    def frames(self) -> list[int]:
        return [self.frame]

    def run(self, svc: EditingService) -> Label | None:
        return svc.set_mask(
            self.video_id, self.frame, self.mask, self.class_name, self.summary, self.target_id
        )


@dataclass(frozen=True)
class AddBox(Command):
    name: ClassVar[str] = "Draw box"
    video_id: int
    frame: int
    bbox: Box
    class_name: str
    track_id: int | None = None

    @property
    def frames(self) -> list[int]:
        return [self.frame]

    def run(self, svc: EditingService) -> Label:
        return svc.add_box(self.video_id, self.frame, self.bbox, self.class_name, self.track_id)


@dataclass(frozen=True)
class ChangeBox(Command):
    """Move (``resize=False``) or resize a box."""

    label_id: int
    frame: int
    bbox: Box
    resize: bool = False

    @property
    def title(self) -> str:
        return "Resize box" if self.resize else "Move box"

    @property
    def frames(self) -> list[int]:
        return [self.frame]

    def run(self, svc: EditingService) -> Label:
        return svc.set_box(svc.label(self.label_id), self.bbox, self.title)


@dataclass(frozen=True)
class ChangeClass(Command):
    label_id: int
    frame: int | None
    class_name: str

    @property
    def title(self) -> str:
        return f"Change class to {self.class_name}"

    @property
    def frames(self) -> list[int]:
        return [] if self.frame is None else [self.frame]

    def run(self, svc: EditingService) -> Label:
        return svc.set_class(svc.label(self.label_id), self.class_name)


@dataclass(frozen=True)
class DeleteLabels(Command):
    """Delete the reviewer's own labels; a model suggestion is rejected instead (kept as training signal)."""

    label_ids: tuple[int, ...]
    on_frames: tuple[int, ...] = ()
    what: str = "label"

    @property
    def title(self) -> str:
        return f"Delete {self.what}"

    @property
    def frames(self) -> list[int]:
        return list(self.on_frames)

    def run(self, svc: EditingService) -> int:
        return svc.delete(svc.labels(self.label_ids))


@dataclass(frozen=True)
class AddSegment(Command):
    video_id: int
    start: int
    end: int
    class_name: str

    @property
    def title(self) -> str:
        return f"Mark {self.class_name} segment"

    def run(self, svc: EditingService) -> Label:
        return svc.add_segment(self.video_id, self.start, self.end, self.class_name)


@dataclass(frozen=True)
class SplitSegment(Command):
    name: ClassVar[str] = "Split segment"
    label_id: int
    at: int

    def run(self, svc: EditingService) -> list[Label]:
        return svc.split_segment(svc.label(self.label_id), self.at)


@dataclass(frozen=True)
class MergeSegments(Command):
    name: ClassVar[str] = "Merge segments"
    label_ids: tuple[int, ...]

    def run(self, svc: EditingService) -> Label:
        return svc.merge_segments(svc.labels(self.label_ids))


@dataclass(frozen=True)
class MoveSegment(Command):
    name: ClassVar[str] = "Move segment edge"
    label_id: int
    start: int
    end: int

    def run(self, svc: EditingService) -> Label:
        return svc.set_segment_bounds(svc.label(self.label_id), self.start, self.end)


@dataclass(frozen=True)
class SetVideoClass(Command):
    video_id: int
    class_name: str

    @property
    def title(self) -> str:
        return f"Video class {self.class_name}"

    def run(self, svc: EditingService) -> Label:
        return svc.set_video_class(self.video_id, self.class_name)


@dataclass(frozen=True)
class SetReviewStatus(Command):
    video_id: int
    status: ReviewStatus

    @property
    def title(self) -> str:
        return f"Review status {str(self.status).replace('_', ' ')}"

    def run(self, svc: EditingService) -> None:
        svc.set_review_status(self.video_id, self.status)


def _moved(labels: tuple[Label, ...], state: ReviewState) -> tuple[Label, ...]:
    """``labels`` in review state ``state``, those the transition table lets move there (the store checks again)."""
    return tuple(replace(x, state=state) for x in labels if ReviewState(x.state).can_become(state))


@dataclass(frozen=True)
class AcceptLabels(Command):
    """Accept exactly these suggestions (the ones the reviewer could see), checked against their versions."""

    labels: tuple[Label, ...]
    on_frames: tuple[int, ...] | None = ()
    bulk: bool = False

    @property
    def title(self) -> str:
        return f"{'Bulk accept' if self.bulk else 'Accept'} {len(self.labels)}"

    @property
    def frames(self) -> list[int] | None:
        return None if self.on_frames is None else list(self.on_frames)

    @property
    def expected(self) -> tuple[Label, ...]:
        return _moved(self.labels, ReviewState.ACCEPTED)

    def run(self, svc: EditingService) -> int:
        return len(svc.accept(self.labels))


@dataclass(frozen=True)
class RejectLabels(Command):
    labels: tuple[Label, ...]
    on_frames: tuple[int, ...] = ()
    reason: str | None = None

    @property
    def title(self) -> str:
        return f"Reject {len(self.labels)}"

    @property
    def frames(self) -> list[int]:
        return list(self.on_frames)

    @property
    def expected(self) -> tuple[Label, ...]:
        return _moved(self.labels, ReviewState.REJECTED)

    def run(self, svc: EditingService) -> int:
        return len(svc.reject(self.labels, self.reason))


@dataclass(frozen=True)
class Propagate(Command):
    """Carry the frame's mask to the next frames by optical flow (stops at a keyframe)."""

    video_id: int
    frame: int
    path: str
    forward: bool
    class_name: str
    max_frames: int

    @property
    def title(self) -> str:
        return f"Propagate {'forward' if self.forward else 'backward'}"

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> Any:
        from core_model.video import VideoReader
        from endoreview.services.propagation import propagate_mask

        with VideoReader(self.path) as reader:
            return propagate_mask(
                svc, self.video_id, self.frame, reader.get_batch, forward=self.forward,
                class_name=self.class_name, max_frames=self.max_frames,
            )  # fmt: skip


@dataclass(frozen=True)
class InterpolateTrack(Command):
    name: ClassVar[str] = "Interpolate boxes"
    video_id: int
    track_id: int

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> Any:
        from endoreview.services.propagation import interpolate_boxes

        return interpolate_boxes(svc, self.video_id, self.track_id)


@dataclass(frozen=True)
class Undo(Command):
    name: ClassVar[str] = "Undo"

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> str:
        return svc.undo() or "nothing to undo"


@dataclass(frozen=True)
class Redo(Command):
    name: ClassVar[str] = "Redo"

    @property
    def frames(self) -> None:
        return None

    def run(self, svc: EditingService) -> str:
        return svc.redo() or "nothing to redo"


# ---------------------------------------------------------------------------------------------------- the writer
def call_now(fn: Callable[[], None]) -> None:
    fn()


@dataclass
class Outcome:
    """What the writer hands back: the command's title, its result and the snapshot (or the error)."""

    name: str
    result: Any = None
    snapshot: Snapshot | None = None
    error: str | None = None


class CommandWriter:
    """One worker thread for every edit; ``busy`` counts actions not yet saved (and delivered)."""

    def __init__(
        self,
        service_factory: Callable[[], EditingService],
        deliver: Callable[[Callable[[], None]], None] = call_now,
    ) -> None:
        self._factory = service_factory
        self._deliver = deliver
        self._service: EditingService | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edit-writer")
        self._lock = threading.Lock()
        self._busy = 0

    @property
    def busy(self) -> int:
        with self._lock:
            return self._busy

    @property
    def undo_state(self) -> tuple[bool, bool]:
        """(can undo, can redo) of the command stack, as the last saved action left it."""
        svc = self._service
        return (svc.can_undo, svc.can_redo) if svc is not None else (False, False)

    def service(self) -> EditingService:
        """The editing service (worker thread only)."""
        check_off_gui_thread("db", "editing service")
        if self._service is None:
            self._service = self._factory()
        return self._service

    def submit(
        self,
        name: str,
        fn: Callable[[EditingService], Any],
        video_id: int,
        frames: Sequence[int] | None,
        on_done: Callable[[Outcome], None],
        window: tuple[int, int] | None = None,
        counts: bool = True,
    ) -> None:
        """Run ``fn(service)`` in order; read back ``frames`` (None: the whole video, with the open suggestions of
        ``window``); deliver an :class:`Outcome`. ``counts=False``: a read only, not an unsaved action (``busy``)."""
        if counts:
            with self._lock:
                self._busy += 1

        def work() -> None:
            try:
                result = fn(self.service())
                snap = read_snapshot(
                    self.service().store, video_id, None if frames is None else list(frames), window
                )
                out = Outcome(name, result, snap)
            except Exception as exc:  # shown to the reviewer, the app carries on
                log.warning("edit %s failed: %s", name, exc, exc_info=True)
                out = Outcome(name, error=str(exc))
            self._deliver(lambda: self._finish(out, on_done, counts))

        self._pool.submit(work)

    def execute(
        self,
        cmd: Command,
        video_id: int,
        on_done: Callable[[Outcome], None],
        window: tuple[int, int] | None = None,
    ) -> None:
        self.submit(cmd.title, cmd.run, video_id, cmd.frames, on_done, window)

    def _finish(self, out: Outcome, on_done: Callable[[Outcome], None], counts: bool = True) -> None:
        if counts:
            with self._lock:
                self._busy -= 1
        on_done(out)

    def shutdown(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)
