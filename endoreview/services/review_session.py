"""The open video's review session, without Qt: labels, suggestions, marks, blind pass, comparison, bulk accept.

The session is the model of the correction tools (napari's model → view): it holds the labels of the open video as
last saved (``frames`` / ``segments``), the current class, the In/Out marks, the selected box, the blind first pass
and what the reviewer can see of the model (:class:`View`: the confidence slider, the mask / box switches). Every
user action becomes a named command (:mod:`endoreview.services.review_commands`) executed in order by the single
:class:`~endoreview.services.review_commands.CommandWriter`; what was saved comes back as a snapshot and the session
tells its listeners (:class:`Change`): the Qt editor redraws, the status bar shows the message.

**What the reviewer cannot see cannot be touched.** A suggestion hidden by the confidence slider, by the mask / box
switches or by the blind pass is never hit by the box tool, never the mask a brush stroke edits, never accepted or
rejected by A / R, never counted or accepted by bulk accept (see :meth:`View.shows`). Accepting sends the exact
labels (with their versions) the reviewer saw, never a query the store evaluates on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from core_model.contract import rle_decode
from endoreview.services import review_commands as C
from endoreview.services.editing import (
    DERIVED_ORIGINS,
    HUMAN_STATES,
    EditingService,
    acted_on,
    empty_mask,
    fill_holes,
    fill_polygon,
    grow_shrink,
    point_in_label,
)
from endoreview.store.records import Label, LabelKind, LabelOrigin, ReviewState, ReviewStatus

log = logging.getLogger(__name__)

#: frames around the one on screen whose open suggestions the session holds, and how close to the window's edge the
#: playhead may come before the next window is read (a window reads in ~20 ms here for 21 suggestions a frame)
SUGGESTION_WINDOW = 240
SUGGESTION_MARGIN = 30
#: opening a video reads only the margin around its first frame (~1,300 suggestions on a procedure, ~25 ms of a
#: worker); the full window follows once the reviewer moves. Reading 240 frames there (~100 ms of Python on the
#: writer, beside the decoders and the timeline's tracks) stalled the GUI thread while a 30-minute video opened.
OPEN_WINDOW = 2 * SUGGESTION_MARGIN + 1
#: the longest range whose bulk-accept candidates are counted for the panel before Shift+A is pressed: counting
#: reads the range's suggestions, and a procedure-long segment is ~340,000 of them (seconds of CPU on a worker, and
#: a heap that made every full garbage collection on the GUI thread 0.2-0.8 s); longer ranges are read on the press
BULK_PREVIEW_FRAMES = 1800
PROPAGATE_MAX_FRAMES = 30  # one press carries a mask about a second; press again to go on (flow drifts)


#: the payload of a :attr:`Change.LABELS` that shows an action's result before it is saved (the view paints it now)
EXPECTED = "expected"


class Change(StrEnum):
    LABELS = "labels"  # a snapshot arrived: redraw the labels
    STATE = "state"  # class, marks, selection, blind, undo availability, busy
    MESSAGE = "message"  # a line for the status bar (payload: the text)


@dataclass
class View:
    """What the reviewer sees of the model's open suggestions (mirrors the player's overlay controls)."""

    min_score: float = 0.5
    show_masks: bool = True
    show_boxes: bool = True
    blind: bool = False

    def shows(self, label: Label) -> bool:
        """Whether ``label`` is on screen: the reviewer's own always; a rejected one never; a suggestion only when
        the blind pass is off, its kind is switched on and its score reaches the slider."""
        if label.state == ReviewState.REJECTED:
            return False
        if label.state != ReviewState.SUGGESTED:
            return True
        if self.blind:
            return False
        if label.kind == LabelKind.MASK and not self.show_masks:
            return False
        if label.kind == LabelKind.BOX and not self.show_boxes:
            return False
        if label.kind in (LabelKind.MASK, LabelKind.BOX):
            return (label.score if label.score is not None else 1.0) >= self.min_score
        return True  # suggested segments and video classes are drawn on the timeline


class ReviewSession:
    """One open video under review (see the module docstring). Not thread-safe: call from one (the GUI) thread;
    ``deliver`` brings the writer's results back to that thread."""

    def __init__(
        self,
        service_factory: Callable[[], EditingService],
        deliver: Callable[[Callable[[], None]], None] = C.call_now,
    ) -> None:
        self.writer = C.CommandWriter(service_factory, deliver)
        self.view = View()
        self._listeners: list[Callable[[Change, Any], None]] = []
        self.video_id: int | None = None
        self.path: str | None = None
        self.size = (0, 0)  # (w, h)
        self.frame_count = 0
        self.frames: dict[int, list[Label]] = {}
        # per command not yet saved: its labels as it leaves them
        self._expected: dict[int, dict[int, Label]] = {}
        self.segments: list[Label] = []
        self.loaded = False
        self._load_asked = False  # the open video's labels were asked for (load())
        self.classes: tuple[str, ...] = ("polyp",)
        self.video_classes: tuple[str, ...] = ("normal", "abnormal")
        self.current_class = "polyp"
        self.review_status = ReviewStatus.UNREVIEWED.value
        self.mark_in: int | None = None
        self.mark_out: int | None = None
        self.selected_box: Label | None = None
        self.active_track: int | None = None  # a new box on another frame continues this track
        self.bulk_threshold = 0.8
        self.can_undo = self.can_redo = False
        self.working: dict[int, np.ndarray] = {}  # masks drawn but not yet saved, per frame
        self.tracks_gen = self.snap_gen = 0  # model output reloaded vs. what our snapshot has seen
        self._refresh_queued = False
        # the model's open suggestions are held for a window of frames around the one on screen (and the range a
        # bulk accept covers), read on demand: a procedure lists ~20 a frame, far too many to hold for 54,000
        # frames. Every label row of the video (the reviewers' own, few) is always held.
        self.focus = 0
        self.ranges: dict[str, tuple[int, int]] = {}
        self._pending: dict[str, tuple[int, int]] = {}
        self._then: dict[str, list[Callable[[], None]]] = {}
        self._again: dict[str, tuple[int, int]] = {}
        self.model_frames: np.ndarray | None = None

    # ---- events -----------------------------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[Change, Any], None]) -> None:
        self._listeners.append(fn)

    def _emit(self, kind: Change, payload: Any = None) -> None:
        for fn in list(self._listeners):
            fn(kind, payload)

    def say(self, text: str) -> None:
        self._emit(Change.MESSAGE, text)

    @property
    def blind(self) -> bool:
        return self.view.blind

    @property
    def editable(self) -> bool:
        return self.video_id is not None and self.loaded

    @property
    def not_editable_reason(self) -> str:
        if self.video_id is None:
            return "Open a video first."
        return "The video's labels are still loading: try again in a moment."

    # ---- executing --------------------------------------------------------------------------------------------
    def execute(self, cmd: C.Command, on_done: Callable[[Any], None] | None = None) -> bool:
        """Queue ``cmd`` on the writer; when saved, take its snapshot, tell listeners, then call ``on_done``."""
        if not self.editable or self.video_id is None:
            self.say(self.not_editable_reason)
            return False
        self._show_expected(cmd)  # drawn before the writer starts (it shares the interpreter lock)
        self._run(cmd, on_done)
        self._emit(Change.STATE)  # "saving …" shows until it is on disk
        return True

    def _show_expected(self, cmd: C.Command) -> None:
        """Show at once what ``cmd`` will leave (an accepted or rejected suggestion: on screen in the time of a paint,
        not of a commit behind a job's write); its saved snapshot replaces it, a refused one re-reads the store."""
        expected = cmd.expected
        if not expected:
            return
        self._expected[id(cmd)] = {x.id: x for x in expected}
        self._keep_expected()
        self._emit(Change.LABELS, EXPECTED)

    def _keep_expected(self) -> None:
        """Labels of commands not yet saved stay as those commands will leave them (a read that was queued before
        the command must not bring the old state back on screen meanwhile)."""
        for by_id in self._expected.values():
            for f in {x.frame for x in by_id.values() if x.frame is not None}:
                if f in self.frames:
                    self.frames[f] = [by_id.get(x.id, x) for x in self.frames[f]]

    def _run(self, cmd: C.Command, on_done: Callable[[Any], None] | None = None) -> None:
        assert self.video_id is not None
        self.writer.execute(
            cmd, self.video_id, lambda out: self._saved(cmd, out, on_done), self._focus_window()
        )

    # ---- the model's suggestions, on demand --------------------------------------------------------------------
    def _focus_window(self, frame: int | None = None, span: int = SUGGESTION_WINDOW) -> tuple[int, int]:
        f = self.focus if frame is None else frame
        a = max(0, f - span // 2)
        return a, max(a + 1, min(self.frame_count or (a + span), a + span))

    def covers(self, a: int, b: int) -> bool:
        """Whether the open suggestions of frames [a, b) are held."""
        return any(ra <= a and b <= rb for ra, rb in self.ranges.values())

    def set_focus(self, frame: int) -> None:
        """The frame on screen: its neighbourhood's suggestions are read if they are not held (near an edge of
        the held window too, so playing on rarely waits)."""
        self.focus = int(frame)
        if self.video_id is None or not self.loaded:
            return
        a, b = max(0, frame - SUGGESTION_MARGIN), min(self.frame_count, frame + SUGGESTION_MARGIN + 1)
        if not self.covers(a, b):
            self.want_frames("focus", *self._focus_window(frame))

    def want_frames(self, key: str, a: int, b: int, then: Callable[[], None] | None = None) -> bool:
        """Make sure the open suggestions of [a, b) are held (under ``key``: "focus" or "bulk"); True when they
        already are, else they are read in order behind any edit and ``then`` runs once they are here."""
        a, b = max(0, int(a)), min(self.frame_count, int(b))
        if b <= a or self.covers(a, b):
            return True
        if self.video_id is None:
            return False
        if key in self._pending:  # one read per key at a time: a fast scrub asks again once it is here
            if then is not None:
                self._then.setdefault(key, []).append(then)
            self._again[key] = (a, b)
            return False
        self._pending[key] = (a, b)
        self._then.setdefault(key, [])
        if then is not None:
            self._then[key].append(then)
        vid = self.video_id
        self.writer.submit(
            "Read suggestions",
            lambda _svc: None,
            vid,
            range(a, b),
            lambda out: self._window_read(key, a, b, out),
            counts=False,
        )
        return False

    def _window_read(self, key: str, a: int, b: int, out: C.Outcome) -> None:
        if self._pending.get(key) != (a, b):
            return  # another video was opened meanwhile
        del self._pending[key]
        snap = out.snapshot
        if out.error is not None or snap is None or snap.video_id != self.video_id:
            self._then.pop(key, None)
            self._again.pop(key, None)
            return
        self.ranges[key] = (a, b)
        self.frames.update(snap.frames)
        self._keep_expected()
        self._prune()
        again = self._again.pop(key, None)
        if again is not None and not self.covers(*again):
            self.want_frames(key, *again)  # the latest range asked meanwhile; waiting callbacks run after it
            self._emit(Change.LABELS, None)
            return
        then_all = self._then.pop(key, [])
        self._emit(Change.LABELS, None)
        for fn in then_all:
            fn()

    def _release(self, key: str) -> None:
        """Stop holding the suggestions read under ``key`` (those outside every other held range are dropped)."""
        if self.ranges.pop(key, None) is not None:
            self._prune()

    def _prune(self) -> None:
        """Drop open suggestions outside every held range (label rows stay)."""
        keep = list(self.ranges.values())
        for f in list(self.frames):
            if any(ra <= f < rb for ra, rb in keep):
                continue
            labs = [x for x in self.frames[f] if x.id > 0]
            if labs:
                self.frames[f] = labs
            else:
                del self.frames[f]

    def _saved(self, cmd: C.Command, out: C.Outcome, on_done: Callable[[Any], None] | None) -> None:
        snap = out.snapshot
        # what was stored (or, if refused, a re-read) replaces what was shown
        self._expected.pop(id(cmd), None)
        if out.error is not None:
            self._failed(out.name, out.error)
            return
        if snap is None or snap.video_id != self.video_id:
            return  # another video was opened since
        if snap.full:
            self.frames = dict(snap.frames)
            self.ranges = {} if snap.window is None else {"focus": snap.window}
            self.model_frames = snap.model_frames
        else:
            self.frames.update(snap.frames)
        self._keep_expected()
        self.segments = list(snap.segments)
        if self.writer.busy == 0:
            self.working.clear()
        if self.selected_box is not None:
            sel = self.selected_box.id
            self.selected_box = next(
                (x for x in self.frames.get(self.selected_box.frame or 0, []) if x.id == sel), None
            )
        self.can_undo, self.can_redo = self.writer.undo_state
        if isinstance(cmd, C.LoadVideo):
            meta = out.result
            self.classes = meta["classes"] or ("polyp",)
            self.video_classes = meta["video_classes"]
            if self.current_class not in self.classes:
                self.current_class = self.classes[0]
            self.review_status = meta["status"]
            self.loaded = True
        elif isinstance(cmd, C.Reload):
            self.snap_gen = max(self.snap_gen, int(out.result))
        else:
            self.say(f"Saved: {out.name}")
        self._emit(Change.LABELS, cmd)
        self._emit(Change.STATE)
        if on_done is not None:
            on_done(out.result)

    def _failed(self, name: str, msg: str) -> None:
        """A refused edit (e.g. changed on another workstation): say so and re-read what is really stored."""
        self.say(f"{name} was not saved: {msg}")
        self.working.clear()
        if self.video_id is not None:
            self._run(C.Reload(self.snap_gen))
        self._emit(Change.STATE)

    # ---- opening ----------------------------------------------------------------------------------------------
    def open(
        self,
        video_id: int,
        width: int,
        height: int,
        frame_count: int,
        path: str | None = None,
        load: bool = True,
    ) -> None:
        """Switch to a video; ``load=False``: its labels and suggestions are read when :meth:`load` is called."""
        self.video_id, self.size, self.frame_count, self.path = video_id, (width, height), frame_count, path
        self.frames, self.segments, self.loaded, self.working = {}, [], False, {}
        self._expected = {}
        self.focus = 0
        self.ranges, self._pending, self._then, self._again, self.model_frames = {}, {}, {}, {}, None
        self.tracks_gen = self.snap_gen = 0
        self.mark_in = self.mark_out = None
        self.selected_box = None
        self._load_asked = False
        if load:
            self.load()

    def load(self) -> None:
        """Read the open video's labels and the suggestions around the frame on screen (once per open)."""
        if self.video_id is None or self._load_asked:
            return
        self._load_asked = True
        cmd = C.LoadVideo(self.video_id)
        self.writer.execute(
            cmd, self.video_id, lambda out: self._saved(cmd, out, None), self._focus_window(span=OPEN_WINDOW)
        )

    def model_output_changed(self) -> None:
        """New model output (or labels) for this video: re-read our snapshot so timeline and frame agree."""
        if self.video_id is None:
            return
        self.tracks_gen += 1
        if self._refresh_queued:
            return  # the queued refresh reads the newest state anyway (results streaming from a job)
        self._refresh_queued = True

        def refresh(_svc: EditingService) -> int:
            self._refresh_queued = False
            return self.tracks_gen

        assert self.video_id is not None
        vid = self.video_id
        self.writer.submit(
            "Refresh",
            refresh,
            vid,
            None,
            lambda out: self._saved(C.Reload(), out, None),
            self._focus_window(),
        )

    def reload(self) -> None:
        if self.video_id is not None:
            self._run(C.Reload(self.snap_gen))

    @property
    def snapshot_current(self) -> bool:
        """Whether our labels are at least as new as the model output on screen."""
        return self.loaded and self.snap_gen >= self.tracks_gen

    # ---- what is on a frame (and what of it the reviewer sees) ------------------------------------------------
    def labels_at(self, frame: int) -> list[Label]:
        return self.frames.get(frame, [])

    def visible_at(self, frame: int) -> list[Label]:
        return [x for x in self.labels_at(frame) if self.view.shows(x)]

    def open_suggestions_at(self, frame: int) -> list[Label]:
        """The suggestions the model's overlay draws on ``frame`` (open and visible)."""
        return [x for x in self.visible_at(frame) if x.state == ReviewState.SUGGESTED]

    def segments_at(self, frame: int, kinds: tuple[str, ...] = ("segment",)) -> list[Label]:
        return [
            x
            for x in self.segments
            if x.kind in kinds and self.view.shows(x)
            and (x.start_frame or 0) <= frame < (x.end_frame or 0)
        ]  # fmt: skip

    def suggestions_here(self, frame: int, point: tuple[float, float] | None = None) -> list[Label]:
        """What A / R / E act on: the visible suggestions under ``point`` (all the frame's visible ones when the
        point hits none or there is no point), else the suggested segments covering the frame."""
        return acted_on(
            self.open_suggestions_at(frame),
            point,
            lambda: self.segments_at(frame, ("segment", "video_class")),
        )

    def mask_target(self, frame: int, class_name: str | None = None) -> Label | None:
        """The mask a stroke on ``frame`` changes: the reviewer's own, else the best *visible* suggestion."""
        cls = self.current_class if class_name is None else class_name
        masks = [x for x in self.visible_at(frame) if x.kind == LabelKind.MASK and x.class_name == cls]
        human = [x for x in masks if x.state != ReviewState.SUGGESTED]
        if human:
            return human[0]
        return max(masks, key=lambda x: x.score or 0.0) if masks else None

    def editable_mask(self, frame: int) -> np.ndarray:
        if frame in self.working:
            return self.working[frame].copy()
        t = self.mask_target(frame)
        w, h = self.size
        return rle_decode(t.rle) if t is not None and t.rle else empty_mask(h, w)

    def box_hit(self, frame: int, pt: tuple[float, float], tol: float) -> tuple[Label | None, str]:
        """The visible box a press at ``pt`` grabs and how (a corner ``tl``/``tr``/``bl``/``br``, ``move``), else
        ``(None, "new")``: a hidden suggestion is never grabbed, the drag draws a new box."""
        x, y = pt
        cands = [b for b in self.visible_at(frame) if b.kind == LabelKind.BOX and b.bbox is not None]
        if self.selected_box is not None:
            sel = self.selected_box.id
            cands.sort(key=lambda b: b.id != sel)
        for b in cands:
            x0, y0, x1, y1 = b.bbox  # type: ignore[misc]
            for name, cx, cy in (("tl", x0, y0), ("tr", x1, y0), ("bl", x0, y1), ("br", x1, y1)):
                if abs(x - cx) <= tol and abs(y - cy) <= tol:
                    return b, name
        for b in cands:
            x0, y0, x1, y1 = b.bbox  # type: ignore[misc]
            if x0 <= x <= x1 and y0 <= y <= y1:
                return b, "move"
        return None, "new"

    def bulk_range(self, frame: int) -> tuple[int, int] | None:
        """In–Out, else the segment under the playhead."""
        if self.mark_in is not None and self.mark_out is not None:
            a, b = sorted((self.mark_in, self.mark_out))
            return a, b
        segs = self.segments_at(frame)
        if not segs:
            return None
        return segs[0].start_frame or 0, segs[0].end_frame or 0

    def bulk_preview(self, frame: int) -> tuple[tuple[int, int], tuple[list[Label], int] | None] | None:
        """What the panel says Shift+A would take at ``frame``: ``None`` without a bulk range, else the range and its
        :meth:`bulk_candidates` - ``None`` in their place when the range is longer than
        :data:`BULK_PREVIEW_FRAMES` and not held (counted when the reviewer presses Shift+A, not read for a
        number on the panel)."""
        rng = self.bulk_range(frame)
        if rng is None:
            return None
        a, b = rng
        if b - a > BULK_PREVIEW_FRAMES and not self.covers(a, b):
            return rng, None
        return rng, self.bulk_candidates(a, b)

    def bulk_candidates(self, start: int, end: int) -> tuple[list[Label], int]:
        """(the visible suggestions on frames ``[start, end)`` scoring at least the bulk threshold — what bulk
        accept takes —, the number of suggestions there it leaves because the reviewer cannot see them)."""
        take: list[Label] = []
        hidden = 0
        thr = self.bulk_threshold
        self.want_frames("bulk", start, end)  # counted once they are read (the panel updates then)
        for f in range(max(0, start), end):
            for x in self.labels_at(f):
                if x.state != ReviewState.SUGGESTED:
                    continue
                if not self.view.shows(x):
                    hidden += 1
                elif (x.score if x.score is not None else 1.0) >= thr:
                    take.append(x)
        return take, hidden

    # ---- masks ------------------------------------------------------------------------------------------------
    def commit_mask(self, frame: int, mask: np.ndarray, summary: str) -> bool:
        if not self.editable or self.video_id is None:
            self.say(self.not_editable_reason)
            return False
        t = self.mask_target(frame)
        self.working[frame] = mask
        return self.execute(
            C.SetMask(self.video_id, frame, mask, self.current_class, summary, None if t is None else t.id)
        )

    def _mask_op(self, frame: int, fn: Callable[[np.ndarray], np.ndarray], summary: str, what: str) -> None:
        m = self.editable_mask(frame)
        if not m.any():
            self.say(f"No mask on this frame to {what}.")
            return
        self.commit_mask(frame, fn(m), summary)

    def fill_polygon(self, frame: int, points: list[tuple[float, float]]) -> None:
        self.commit_mask(frame, fill_polygon(self.editable_mask(frame), points), "Polygon")

    def fill_holes(self, frame: int) -> None:
        self._mask_op(frame, fill_holes, "Fill holes", "fill")

    def grow(self, frame: int, px: int) -> None:
        what = f"{'Grow' if px > 0 else 'Shrink'} mask by {abs(px)} px"
        self._mask_op(frame, lambda m: grow_shrink(m, px), what, "grow or shrink")

    def clear_mask(self, frame: int) -> None:
        self._mask_op(frame, np.zeros_like, "Clear mask", "clear")

    def copy_from(self, frame: int, offset: int) -> None:
        src = frame + offset
        if not 0 <= src < self.frame_count or not self.editable_mask(src).any():
            self.say(f"Frame {src + 1} has no {self.current_class} mask to copy.")
            return
        self.commit_mask(frame, self.editable_mask(src), f"Copy mask from frame {src + 1}")

    def propagate(self, frame: int, forward: bool) -> None:
        if not self.editable_mask(frame).any():
            self.say("Draw or accept a mask on this frame first, then propagate it.")
            return
        if self.video_id is None or self.path is None:
            return
        self.execute(
            C.Propagate(self.video_id, frame, self.path, forward, self.current_class, PROPAGATE_MAX_FRAMES),
            on_done=lambda r: self.say(f"Propagated to {len(r.frames)} frame(s): {r.reason}."),
        )

    # ---- boxes ------------------------------------------------------------------------------------------------
    def clip_box(self, box: C.Box) -> C.Box:
        w, h = self.size
        x0, y0, x1, y1 = box
        return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))

    def select_box(self, label: Label | None) -> None:
        changed = label is not None and (self.selected_box is None or self.selected_box.id != label.id)
        self.selected_box = label
        if label is not None and label.kind == LabelKind.BOX:
            self.active_track = label.track_id
        if changed:
            self.say(f"Selected: {self.details(label)}")  # type: ignore[arg-type]
        self._emit(Change.STATE)

    def commit_box(self, frame: int, box: C.Box, mode: str) -> None:
        if self.video_id is None:
            return
        if mode == "new":
            here = {x.track_id for x in self.labels_at(frame) if x.kind == LabelKind.BOX}
            tid = self.active_track if self.active_track not in here else None
            self.execute(
                C.AddBox(self.video_id, frame, box, self.current_class, tid), on_done=self.select_box
            )
            return
        lab = self.selected_box
        if lab is None or not self.view.shows(lab):
            return
        self.execute(C.ChangeBox(lab.id, frame, box, resize=mode != "move"), on_done=self.select_box)

    def interpolate_track(self) -> None:
        lab = self.selected_box
        if lab is None or lab.track_id is None or self.video_id is None:
            self.say("Select a box of the track to interpolate (Box tool, click it).")
            return
        self.execute(
            C.InterpolateTrack(self.video_id, lab.track_id),
            on_done=lambda fr: self.say(
                f"Interpolated {len(fr)} frame(s)." if fr else "Needs two keyframe boxes of this track."
            ),
        )

    def delete_selection(self, frame: int) -> None:
        lab = self.selected_box
        if lab is not None:
            self.selected_box = None
            self.execute(C.DeleteLabels((lab.id,), (lab.frame or 0,), "box"))
            return
        segs = [x for x in self.segments_at(frame) if x.state != ReviewState.SUGGESTED]
        if segs:
            self.execute(C.DeleteLabels(tuple(x.id for x in segs), (), "segment"))
            return
        self.say("Nothing selected to delete (select a box, or put the playhead in a segment).")

    # ---- class labels -----------------------------------------------------------------------------------------
    def set_mark(self, which: str, frame: int) -> None:
        if which == "in":
            self.mark_in = frame
        else:
            self.mark_out = frame + 1  # Out marks the last frame of the segment (end is exclusive)
        self.say(f"In {_fmt(self.mark_in)} · Out {_fmt(self.mark_out, -1)} — press 1–9 for the class")
        self._emit(Change.STATE)

    def set_marks(self, start: int | None, end: int | None) -> None:
        self.mark_in, self.mark_out = start, end
        self._emit(Change.STATE)

    def class_key(self, k: int) -> None:
        if k >= len(self.classes):
            self.say(f"No class {k + 1} in this project's label set ({', '.join(self.classes)}).")
            return
        cls = self.current_class = self.classes[k]
        if (
            self.video_id is not None
            and self.mark_in is not None
            and self.mark_out not in (None, self.mark_in)
        ):
            a, b = sorted((self.mark_in, self.mark_out))  # type: ignore[type-var]
            self.mark_in = self.mark_out = None
            self.execute(C.AddSegment(self.video_id, a, b, cls))
        elif self.selected_box is not None and self.selected_box.class_name != cls:
            self.execute(C.ChangeClass(self.selected_box.id, self.selected_box.frame, cls))
        else:
            self.say(f"Class: {cls}")
        self._emit(Change.STATE)

    def split_segment(self, frame: int) -> None:
        segs = [x for x in self.segments_at(frame) if (x.start_frame or 0) < frame]
        if not segs:
            self.say("Put the playhead inside a segment to split it there.")
            return
        self.execute(C.SplitSegment(segs[0].id, frame))

    def merge_segment(self, frame: int) -> None:
        here = self.segments_at(frame)
        if not here:
            self.say("Put the playhead in a segment to merge it with the next one.")
            return
        cur = here[0]
        later = sorted(
            (x for x in self.segments if x.kind == LabelKind.SEGMENT and self.view.shows(x)
             and x.id != cur.id and (x.start_frame or 0) >= (cur.start_frame or 0)
             and x.class_name == cur.class_name),
            key=lambda x: x.start_frame or 0,
        )  # fmt: skip
        if not later:
            self.say("No later segment of the same class to merge with.")
            return
        self.execute(C.MergeSegments((cur.id, later[0].id)))

    def move_segment_edges(self, label_id: int, start: int, end: int) -> None:
        self.execute(C.MoveSegment(label_id, start, end))

    def details(self, label: Label) -> str:
        """One line about a label for the reviewer: kind, class, state, origin, score, who reviewed it, and for an
        imported label the file (and line or field) it came from."""
        parts = [f"{label.class_name} {label.kind}", str(label.state), f"origin {label.origin}"]
        if label.score is not None:
            parts.append(f"score {label.score:.2f}")
        if label.track_id is not None:
            parts.append(f"track {label.track_id}")
        if label.reviewed_by:
            parts.append(f"reviewed by {label.reviewed_by}")
        if label.reason:
            parts.append(f"reason: {label.reason}")
        if label.origin == LabelOrigin.IMPORTED:
            from endoreview.interchange.importer import provenance_of  # the one reader of import provenance

            prov = provenance_of(label)
            parts.append(
                f"imported from {prov.details()}" if prov is not None else "imported (source not recorded)"
            )
        return " · ".join(parts)

    def describe_at(self, frame: int, point: tuple[float, float]) -> list[Label]:
        """The Navigate tool's click: says what the visible masks and boxes under ``point`` are (their details, for
        an imported one the file, line, format and importer it came from); returns them."""
        here = [x for x in self.visible_at(frame) if point_in_label(x, *point)]
        if here:
            more = f" (and {len(here) - 3} more)" if len(here) > 3 else ""
            self.say("Here: " + " | ".join(self.details(x) for x in here[:3]) + more)
        return here

    def video_class(self) -> str | None:
        """The reviewer's class for the whole video (None when not set)."""
        own = [x for x in self.segments if x.kind == LabelKind.VIDEO_CLASS and x.state in HUMAN_STATES]
        return own[-1].class_name if own else None

    def set_video_class(self, cls: str) -> None:
        if self.video_id is not None:
            self.execute(C.SetVideoClass(self.video_id, cls))

    def set_review_status(self, status: str, on_done: Callable[[Any], None] | None = None) -> None:
        if self.video_id is None:
            return
        self.review_status = str(ReviewStatus(status))
        self.execute(C.SetReviewStatus(self.video_id, ReviewStatus(status)), on_done=on_done)

    # ---- reviewing the model ----------------------------------------------------------------------------------
    def review(
        self, verb: str, frame: int, point: tuple[float, float] | None = None, reason: str | None = None
    ) -> None:
        """A / R: accept or reject the visible suggestion(s) under the cursor (see :meth:`suggestions_here`)."""
        if self.blind:
            self.say("Blind pass: the model's suggestions are hidden — reveal them first.")
            return
        labs = self.suggestions_here(frame, point)
        if not labs:
            self.say("No visible suggestion here (the confidence slider may hide some).")
            return
        if verb == "accept":
            self.execute(C.AcceptLabels(tuple(labs), (frame,)))
        else:
            self.execute(C.RejectLabels(tuple(labs), (frame,), reason))

    def edit_target(self, frame: int, point: tuple[float, float] | None = None) -> Label | None:
        """E: the visible mask or box suggestion to start editing."""
        labs = [x for x in self.suggestions_here(frame, point) if x.kind in (LabelKind.MASK, LabelKind.BOX)]
        return labs[0] if labs else None

    def bulk_accept(self, frame: int) -> None:
        """Shift+A: accept every visible suggestion In–Out (or in the segment under the playhead) at or above the
        bulk threshold, and say how many were accepted and how many hidden ones were left open."""
        if self.blind:
            self.say("Blind pass: reveal the model's suggestions before accepting them.")
            return
        rng = self.bulk_range(frame)
        if rng is None:
            self.say("Mark In/Out (I, O) or put the playhead in a segment to bulk-accept.")
            return
        a, b = rng
        if not self.want_frames("bulk", a, b, then=lambda: self.bulk_accept(frame)):
            self.say(f"Reading the suggestions on frames {a + 1}–{b} …")
            return
        take, hidden = self.bulk_candidates(a, b)
        thr = self.bulk_threshold
        left = f"; {hidden} hidden by the confidence slider / switches left open" if hidden else ""
        if not take:
            self.say(f"No visible suggestion ≥ {thr:.2f} on frames {a + 1}–{b}{left}.")
            return

        def done(n: int) -> None:
            self._release("bulk")  # a procedure-long range is ~340,000 suggestions: not held once accepted
            self.say(f"Accepted {n} suggestion(s) ≥ {thr:.2f} on frames {a + 1}–{b}{left}.")

        self.execute(C.AcceptLabels(tuple(take), None, bulk=True), on_done=done)

    # ---- undo -------------------------------------------------------------------------------------------------
    def undo(self) -> None:
        self.execute(C.Undo(), on_done=self.say)

    def redo(self) -> None:
        self.execute(C.Redo(), on_done=self.say)

    # ---- blind first pass -------------------------------------------------------------------------------------
    def set_blind(self, on: bool) -> bool:
        """Hide (``True``) or reveal the model's output; returns whether it changed."""
        if on == self.view.blind:
            return False
        self.view.blind = on
        if on:
            self.say("Blind first pass: the model's output is hidden until you reveal it.")
        else:
            self.say(self.compare_with_model())
        self._emit(Change.STATE)
        return True

    def set_view(
        self, min_score: float | None = None, show_masks: bool | None = None, show_boxes: bool | None = None
    ) -> None:
        """Follow the player's overlay controls (the confidence slider, the mask / box switches)."""
        if min_score is not None:
            self.view.min_score = float(min_score)
        if show_masks is not None:
            self.view.show_masks = bool(show_masks)
        if show_boxes is not None:
            self.view.show_boxes = bool(show_boxes)
        if self.selected_box is not None and not self.view.shows(self.selected_box):
            self.selected_box = None
        self._emit(Change.STATE)

    def compare_with_model(self) -> str:
        """Agreement between the reviewer's frames with a label and the model's suggestions, per frame."""
        n = self.frame_count
        if not n:
            return ""
        human = np.zeros(n, bool)
        model = np.zeros(n, bool)
        if self.model_frames is not None and self.model_frames.shape == (n,):
            model |= self.model_frames  # every frame with model output, held or not
        for f, labs in self.frames.items():
            if 0 <= f < n:
                human[f] = any(x.state in HUMAN_STATES for x in labs)
                model[f] |= any(x.origin == LabelOrigin.PREDICTED for x in labs)
        for s in self.segments:
            if s.kind == LabelKind.SEGMENT:
                sl = slice(max(0, s.start_frame or 0), min(n, s.end_frame or 0))
                if s.origin == LabelOrigin.PREDICTED:
                    model[sl] = True
                elif s.state in HUMAN_STATES:
                    human[sl] = True
        agree = float((human == model).mean())
        return (
            f"Revealed. You labelled {int(human.sum())} frame(s), the model {int(model.sum())}; "
            f"you agree on {agree:.0%} of frames."
        )

    # ---- drawing helpers for the view -------------------------------------------------------------------------
    @staticmethod
    def derived(label: Label) -> bool:
        return label.origin in DERIVED_ORIGINS

    def human_masks_at(self, frame: int) -> Iterable[Label]:
        return [
            x
            for x in self.labels_at(frame)
            if x.kind == LabelKind.MASK
            and x.state not in (ReviewState.SUGGESTED, ReviewState.REJECTED)
            and x.rle
        ]

    def overlay_content(self, frame: int) -> tuple[list[dict], list[dict]]:
        """(masks, boxes) for the model's overlay: the open suggestions of ``frame`` (none during a blind pass);
        the overlay itself then hides those under the slider, exactly as :meth:`View.shows` does."""
        if self.blind:
            return [], []
        sug = [x for x in self.labels_at(frame) if x.state == ReviewState.SUGGESTED]
        score = {x.id: x.score if x.score is not None else 1.0 for x in sug}
        masks = [{"label": x.class_name, "score": score[x.id], "rle": x.rle, "label_id": x.id}
                 for x in sug if x.kind == LabelKind.MASK and x.rle]  # fmt: skip
        boxes = [{"label": x.class_name, "score": score[x.id], "bbox": list(x.bbox), "label_id": x.id}
                 for x in sug if x.kind == LabelKind.BOX and x.bbox is not None]  # fmt: skip
        return masks, boxes

    def drawn_boxes_at(self, frame: int) -> list[Label]:
        """Boxes the label layer draws: the reviewer's own, and a selected suggestion (being edited)."""
        sel = self.selected_box.id if self.selected_box is not None else None
        return [
            x
            for x in self.labels_at(frame)
            if x.kind == LabelKind.BOX and x.bbox is not None
            and (x.state not in (ReviewState.SUGGESTED, ReviewState.REJECTED) or x.id == sel)
        ]  # fmt: skip


def _fmt(v: int | None, shift: int = 0) -> str:
    return "—" if v is None else f"frame {v + shift + 1}"
