"""The correction tools' controller: the reviewer's labels of the open video, the tools, and their keys.

State lives here (not in widgets): the labels of the open video as last saved (``frames`` / ``segments``), the
current tool, class, brush size, In/Out marks, the selected box and whether the blind first pass hides the model.
Every action goes through :class:`~endoreview.ui.editing.writer.EditWriter` (saved at once, in order, off the GUI
thread, one undo step each); what was saved comes back as a snapshot and is drawn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QTimer, Signal

from core_model.contract import rle_decode
from endoreview.services import editing as E
from endoreview.store.records import Label, LabelKind, ReviewState
from endoreview.ui.editing.canvas import CanvasTools, Tool
from endoreview.ui.editing.layer import DrawnBox, DrawnMask, LabelLayer
from endoreview.ui.editing.writer import EditWriter, Snapshot
from endoreview.ui.palette import colour_for

log = logging.getLogger(__name__)

BRUSH_SIZES = (2, 3, 4, 6, 8, 11, 15, 20, 27, 36, 48, 64)
PROPAGATE_MAX_FRAMES = 30  # one press carries a mask about a second; press again to go on (flow drifts)


class EditController(QObject):
    message = Signal(str)
    stateChanged = Signal()  # tool, class, brush, marks, selection, blind, undo availability
    labelsChanged = Signal()  # a snapshot arrived

    def __init__(
        self, win: Any
    ) -> None:  # MainWindow (duck-typed: player, player_widget, timeline, review_ctl …)
        super().__init__(win)
        self.win = win
        self.backend = win.backend
        self.player = win.player
        self.player_widget = win.player_widget
        self.timeline = win.timeline
        self.review_ctl = win.review_ctl
        self.runner = win.runner
        self.writer = EditWriter(self._make_service, self)
        self.writer.saved.connect(self._on_saved)
        self.writer.failed.connect(self._on_failed)
        self.layer = LabelLayer()
        self.player_widget.view.vb.addItem(self.layer)
        self.tools = CanvasTools(self)
        # state
        self.video_id: int | None = None
        self.size = (0, 0)  # (w, h)
        self.frame_count = 0
        self.frames: dict[int, list[Label]] = {}
        self.segments: list[Label] = []
        self.loaded = False
        self.classes: tuple[str, ...] = ("polyp",)
        self.video_classes: tuple[str, ...] = ("normal", "abnormal")
        self.current_class = "polyp"
        self.brush_index = 5
        self.grow_px = 2
        self.mark_in: int | None = None
        self.mark_out: int | None = None
        self.selected_box: Label | None = None
        self.active_track: int | None = None  # a new box on another frame continues this track
        self.hover: tuple[float, float] | None = None
        self.blind = False
        self.bulk_threshold = 0.8
        self.can_undo = self.can_redo = False
        self.review_status = "unreviewed"
        self._working: dict[int, np.ndarray] = {}
        self._tracks_gen = self._snap_gen = 0  # model output reloaded vs. what our snapshot has seen
        self._refresh_queued = False
        self.review_ctl.videoOpened.connect(self._on_video)
        self.review_ctl.tracksLoaded.connect(self._on_tracks)
        self.player.framePresented.connect(lambda i, _img, _full: self.refresh_frame())
        self.player.frameChanged.connect(lambda _i: self.refresh_frame())
        self._reload = QTimer(self)  # the timeline / overlays re-read after edits, at most twice a second
        self._reload.setSingleShot(True)
        self._reload.setInterval(500)
        self._reload.timeout.connect(self.review_ctl.reload_tracks)
        win.installEventFilter(self)

    def eventFilter(self, obj, ev) -> bool:  # noqa: N802, ANN001 - Qt API
        if obj is self.win and ev.type() == QEvent.Type.Close:
            self._reload.stop()
            # the review controller's throttled reload must not fire into a runner that is shutting down
            timer = getattr(self.review_ctl, "_reload_timer", None)
            if timer is not None:
                timer.stop()
            self.writer.shutdown(wait=True)  # every edit made is on disk before the window goes
        return False

    def _make_service(self) -> E.EditingService:
        return E.EditingService(self.backend.store)

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def editable(self) -> bool:
        return self.video_id is not None and self.loaded

    @property
    def frame(self) -> int:
        return self.player.current

    @property
    def brush_radius(self) -> float:
        return float(BRUSH_SIZES[self.brush_index])

    def set_tool(self, tool: Tool | str) -> None:
        self.tools.cancel()
        self.tools.tool = Tool(tool)
        self.layer.brush_radius = self.brush_radius if self.tools.tool in (Tool.BRUSH, Tool.ERASER) else 0.0
        self.layer.update()
        self.stateChanged.emit()

    def set_brush(self, delta: int) -> None:
        self.brush_index = max(0, min(len(BRUSH_SIZES) - 1, self.brush_index + delta))
        if self.tools.tool in (Tool.BRUSH, Tool.ERASER):
            self.layer.brush_radius = self.brush_radius
            self.layer.update()
        self.message.emit(f"Brush radius {self.brush_radius:g} px")
        self.stateChanged.emit()

    # ---- opening ----------------------------------------------------------------------------------------------
    def _on_video(self, info: Any) -> None:
        self.video_id, self.size, self.frame_count = (
            info.video_id,
            (info.width, info.height),
            info.frame_count,
        )
        self.frames, self.segments, self.loaded, self._working = {}, [], False, {}
        self._tracks_gen = self._snap_gen = 0
        self.mark_in = self.mark_out = None
        self.selected_box = None
        self.layer.set_frame_rect(info.width, info.height)
        self.layer.set_masks([])
        self.layer.boxes = []
        vid = info.video_id

        def load(svc: E.EditingService) -> dict:
            store = svc.store
            project = store.get_project(store.get_video(vid).project_id)
            ls = store.get_label_set(project.label_set_id)
            return {
                "classes": tuple(c.name for c in ls.classes if {"segment", "mask", "box"} & set(c.tasks)),
                "video_classes": tuple(c.name for c in ls.classes_for("video_class")),
                "status": str(store.get_video(vid).review_status),
            }

        self.writer.submit("Load labels", load, vid, frames=None, on_done=self._on_loaded)

    def _on_loaded(self, meta: dict) -> None:
        self.classes = meta["classes"] or ("polyp",)
        self.video_classes = meta["video_classes"]
        if self.current_class not in self.classes:
            self.current_class = self.classes[0]
        self.review_status = meta["status"]
        self.loaded = True
        self.stateChanged.emit()

    def _on_saved(self, name: str, _result: Any, snap: Snapshot) -> None:
        if snap.video_id != self.video_id:
            return
        if snap.full:
            self.frames = dict(snap.frames)
        else:
            for f, labs in snap.frames.items():
                self.frames[f] = labs
        self.segments = list(snap.segments)
        if self.writer.busy == 0:
            self._working.clear()
        if self.selected_box is not None:
            self.selected_box = next(
                (x for x in self.frames.get(self.frame, []) if x.id == self.selected_box.id), None
            )
        self.can_undo, self.can_redo = self.writer.undo_state
        self.refresh_frame()
        self.labelsChanged.emit()
        self.stateChanged.emit()
        if name == "Refresh":
            self._snap_gen = max(self._snap_gen, int(_result))
            self.refresh_frame()
        elif name != "Load labels":
            self.message.emit(f"Saved: {name}")
            if not self._reload.isActive():
                self._reload.start()

    def _on_failed(self, name: str, msg: str) -> None:
        """A refused edit (e.g. changed on another workstation): say so and show what is really stored."""
        self.message.emit(f"{name} was not saved: {msg}")
        self._working.clear()
        if self.video_id is not None:
            self.writer.submit(
                "Load labels", lambda _s: None, self.video_id, frames=None, on_done=lambda _r: None
            )
        self.stateChanged.emit()

    def _on_tracks(self, _tracks: Any) -> None:
        """New model output (or labels) for the timeline: re-read our snapshot so both agree."""
        if self.blind:
            self._hide_model()
        if self.video_id is None:
            return
        self._tracks_gen += 1
        if self._refresh_queued:
            return  # the queued refresh reads the newest state anyway (results streaming from a job)
        self._refresh_queued = True

        def refresh(_s: E.EditingService) -> int:
            self._refresh_queued = False
            return self._tracks_gen

        self.writer.submit("Refresh", refresh, self.video_id, frames=None)

    # ---- drawing ----------------------------------------------------------------------------------------------
    def labels_here(self, frame: int | None = None) -> list[Label]:
        return self.frames.get(self.frame if frame is None else frame, [])

    def _mask_target(self, frame: int) -> Label | None:
        masks = [
            x
            for x in self.labels_here(frame)
            if x.kind == LabelKind.MASK
            and x.class_name == self.current_class
            and x.state != ReviewState.REJECTED
        ]
        human = [x for x in masks if x.state != ReviewState.SUGGESTED]
        if human:
            return human[0]
        if self.blind:
            return None
        return max(masks, key=lambda x: x.score or 0.0) if masks else None

    def editable_mask(self, frame: int | None = None) -> np.ndarray:
        f = self.frame if frame is None else frame
        if f in self._working:
            return self._working[f].copy()
        t = self._mask_target(f)
        w, h = self.size
        return rle_decode(t.rle) if t is not None and t.rle else E.empty_mask(h, w)

    def preview_mask(self, mask: np.ndarray) -> None:
        self._draw(working=mask)

    def refresh_frame(self) -> None:
        if self.video_id is None:
            return
        live = self.tools.stroke_mask  # a stroke in progress stays drawn when the frame is repainted
        self._draw(working=live if live is not None else self._working.get(self.frame))
        self._override_overlay()

    def _colour(self, cls: str) -> tuple[int, int, int]:
        return colour_for(cls, self.classes)

    def _draw(self, working: np.ndarray | None) -> None:
        labs = self.labels_here()
        masks = []
        for x in labs:
            if (
                x.kind != LabelKind.MASK
                or x.state in (ReviewState.SUGGESTED, ReviewState.REJECTED)
                or not x.rle
            ):
                continue
            if working is not None and x.class_name == self.current_class:
                continue
            masks.append(
                DrawnMask(rle_decode(x.rle), self._colour(x.class_name), x.origin in E.DERIVED_ORIGINS)
            )
        if working is not None:
            masks.append(DrawnMask(working, self._colour(self.current_class)))
        self.layer.set_masks(masks)
        sel = self.selected_box.id if self.selected_box is not None else None
        self.layer.boxes = [
            DrawnBox(
                x.bbox, self._colour(x.class_name), x.class_name, x.origin in E.DERIVED_ORIGINS, x.id == sel
            )  # type: ignore[arg-type]
            for x in labs
            if x.kind == LabelKind.BOX
            and x.bbox is not None
            and (x.state not in (ReviewState.SUGGESTED, ReviewState.REJECTED) or x.id == sel)
        ]
        self.layer.update()

    def _override_overlay(self) -> None:
        """The model's layer shows only what is still open (suggested) — nothing during a blind pass."""
        if not self.loaded or self._snap_gen < self._tracks_gen:
            return  # our snapshot is older than the model output on screen: leave the player's overlay
        ov = self.player_widget.view.overlay
        if self.blind:
            ov.set_content(self.frame, [], [])
            return
        sug = [x for x in self.labels_here() if x.state == ReviewState.SUGGESTED]
        masks = [
            {
                "label": x.class_name,
                "score": x.score if x.score is not None else 1.0,
                "rle": x.rle,
                "label_id": x.id,
            }
            for x in sug
            if x.kind == LabelKind.MASK and x.rle
        ]
        boxes = [
            {"label": x.class_name, "score": x.score if x.score is not None else 1.0, "bbox": list(x.bbox),
             "label_id": x.id}
            for x in sug
            if x.kind == LabelKind.BOX and x.bbox is not None
        ]  # fmt: skip
        ov.set_content(self.frame, masks, boxes)

    # ---- submitting -------------------------------------------------------------------------------------------
    def _submit(
        self, name: str, fn: Callable[[E.EditingService], Any], frames: list[int] | None = None,
        on_done: Callable[[Any], None] | None = None,
    ) -> bool:  # fmt: skip
        if not self.editable or self.video_id is None:
            self.message.emit("Open a video first.")
            return False
        self.writer.submit(name, fn, self.video_id, frames=frames, on_done=on_done)
        self.stateChanged.emit()  # "saving …" shows until it is on disk
        return True

    # ---- masks ------------------------------------------------------------------------------------------------
    def commit_mask(self, mask: np.ndarray, summary: str, frame: int | None = None) -> None:
        f, vid, cls = (self.frame if frame is None else frame), self.video_id, self.current_class
        self._working[f] = mask
        self._draw(working=mask)
        self._submit(summary, lambda s: s.set_mask(vid, f, mask, cls, summary), [f])

    def fill_polygon(self, points: list[tuple[float, float]]) -> None:
        self.commit_mask(E.fill_polygon(self.editable_mask(), points), "Polygon")

    def fill_holes(self) -> None:
        m = self.editable_mask()
        if not m.any():
            self.message.emit("No mask on this frame to fill.")
            return
        self.commit_mask(E.fill_holes(m), "Fill holes")

    def grow(self, pixels: int) -> None:
        m = self.editable_mask()
        if not m.any():
            self.message.emit("No mask on this frame to grow or shrink.")
            return
        self.commit_mask(
            E.grow_shrink(m, pixels), f"{'Grow' if pixels > 0 else 'Shrink'} mask by {abs(pixels)} px"
        )

    def clear_mask(self) -> None:
        m = self.editable_mask()
        if not m.any():
            self.message.emit("No mask on this frame to clear.")
            return
        self.commit_mask(np.zeros_like(m), "Clear mask")

    def copy_from(self, offset: int) -> None:
        src = self.frame + offset
        if not 0 <= src < self.frame_count or not self.editable_mask(src).any():
            self.message.emit(f"Frame {src + 1} has no {self.current_class} mask to copy.")
            return
        self.commit_mask(self.editable_mask(src), f"Copy mask from frame {src + 1}")

    def propagate(self, forward: bool) -> None:
        from endoreview.services.propagation import propagate_mask

        f, vid, cls = self.frame, self.video_id, self.current_class
        if not self.editable_mask(f).any():
            self.message.emit("Draw or accept a mask on this frame first, then propagate it.")
            return
        path = self.review_ctl.info.path if self.review_ctl.info else None

        def run(svc: E.EditingService):  # noqa: ANN202
            from core_model.video import VideoReader

            with VideoReader(path) as reader:
                return propagate_mask(
                    svc,
                    vid,
                    f,
                    reader.get_batch,
                    forward=forward,
                    class_name=cls,
                    max_frames=PROPAGATE_MAX_FRAMES,
                )

        self._submit(
            f"Propagate {'forward' if forward else 'backward'}", run, None,
            on_done=lambda r: self.message.emit(f"Propagated to {len(r.frames)} frame(s): {r.reason}."),
        )  # fmt: skip

    # ---- boxes ------------------------------------------------------------------------------------------------
    def box_hit(self, pt: tuple[float, float], tol: float) -> tuple[Label | None, str]:
        x, y = pt
        cands = [
            b
            for b in self.labels_here()
            if b.kind == LabelKind.BOX and b.bbox is not None and b.state != ReviewState.REJECTED
            and (b.state != ReviewState.SUGGESTED or not self.blind)
        ]  # fmt: skip
        if self.selected_box is not None:
            cands.sort(key=lambda b: b.id != self.selected_box.id)  # type: ignore[union-attr]
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

    def clip_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        w, h = self.size
        x0, y0, x1, y1 = box
        return (max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1))

    def select_box(self, label: Label | None) -> None:
        self.selected_box = label
        if label is not None and label.kind == LabelKind.BOX:
            self.active_track = label.track_id
        self.refresh_frame()
        self.stateChanged.emit()

    def commit_box(self, box: tuple[float, float, float, float], mode: str) -> None:
        f, vid, cls = self.frame, self.video_id, self.current_class
        if mode == "new":
            here = {x.track_id for x in self.labels_here() if x.kind == LabelKind.BOX}
            tid = self.active_track if self.active_track not in here else None
            self._submit("Draw box", lambda s: s.add_box(vid, f, box, cls, tid), [f], on_done=self.select_box)
            return
        lab = self.selected_box
        if lab is None:
            return
        summary = "Move box" if mode == "move" else "Resize box"
        self._submit(summary, lambda s: s.set_box(s.label(lab.id), box, summary), [f],
                     on_done=self.select_box)  # fmt: skip

    def interpolate_track(self) -> None:
        from endoreview.services.propagation import interpolate_boxes

        lab, vid = self.selected_box, self.video_id
        if lab is None or lab.track_id is None:
            self.message.emit("Select a box of the track to interpolate (Box tool, click it).")
            return
        self._submit(
            "Interpolate boxes", lambda s: interpolate_boxes(s, vid, lab.track_id), None,
            on_done=lambda fr: self.message.emit(
                f"Interpolated {len(fr)} frame(s)." if fr else "Needs two keyframe boxes of this track."
            ),
        )  # fmt: skip

    def delete_selection(self) -> None:
        lab = self.selected_box
        if lab is not None:
            self.selected_box = None
            self._submit("Delete box", lambda s: s.delete([s.label(lab.id)]), [lab.frame])
            return
        segs = [x for x in self.segments_at(self.frame) if x.state != ReviewState.SUGGESTED]
        if segs:
            ids = [x.id for x in segs]
            self._submit("Delete segment", lambda s: s.delete(s.labels(ids)), [])
            return
        self.message.emit("Nothing selected to delete (select a box, or put the playhead in a segment).")

    # ---- class labels -----------------------------------------------------------------------------------------
    def segments_at(self, frame: int, kinds: tuple[str, ...] = ("segment",)) -> list[Label]:
        return [
            x
            for x in self.segments
            if x.kind in kinds and x.state != ReviewState.REJECTED
            and (x.start_frame or 0) <= frame < (x.end_frame or 0)
        ]  # fmt: skip

    def set_mark(self, which: str) -> None:
        if which == "in":
            self.mark_in = self.frame
        else:
            self.mark_out = self.frame + 1  # Out marks the last frame of the segment (end is exclusive)
        self.message.emit(
            f"In {self._fmt(self.mark_in)} · Out {self._fmt(self.mark_out, -1)} — press 1–9 for the class"
        )
        self.stateChanged.emit()

    @staticmethod
    def _fmt(v: int | None, shift: int = 0) -> str:
        return "—" if v is None else f"frame {v + shift + 1}"

    def class_key(self, k: int) -> None:
        if k >= len(self.classes):
            self.message.emit(f"No class {k + 1} in this project's label set ({', '.join(self.classes)}).")
            return
        cls = self.current_class = self.classes[k]
        vid = self.video_id
        if self.mark_in is not None and self.mark_out is not None and self.mark_out != self.mark_in:
            a, b = sorted((self.mark_in, self.mark_out))
            self.mark_in = self.mark_out = None
            self._submit(f"Mark {cls} segment", lambda s: s.add_segment(vid, a, b, cls), [])
        elif self.selected_box is not None and self.selected_box.class_name != cls:
            lab = self.selected_box
            self._submit(f"Change class to {cls}", lambda s: s.set_class(s.label(lab.id), cls), [lab.frame])
        else:
            self.message.emit(f"Class: {cls}")
        self.stateChanged.emit()

    def split_segment(self) -> None:
        f = self.frame
        segs = [x for x in self.segments_at(f) if (x.start_frame or 0) < f]
        if not segs:
            self.message.emit("Put the playhead inside a segment to split it there.")
            return
        sid = segs[0].id
        self._submit("Split segment", lambda s: s.split_segment(s.label(sid), f), [])

    def merge_segment(self) -> None:
        here = self.segments_at(self.frame)
        if not here:
            self.message.emit("Put the playhead in a segment to merge it with the next one.")
            return
        cur = here[0]
        later = sorted(
            (x for x in self.segments if x.kind == LabelKind.SEGMENT and x.state != ReviewState.REJECTED
             and x.id != cur.id and (x.start_frame or 0) >= (cur.start_frame or 0)
             and x.class_name == cur.class_name),
            key=lambda x: x.start_frame or 0,
        )  # fmt: skip
        if not later:
            self.message.emit("No later segment of the same class to merge with.")
            return
        ids = [cur.id, later[0].id]
        self._submit("Merge segments", lambda s: s.merge_segments(s.labels(ids)), [])

    def move_segment_edges(self, label_id: int, start: int, end: int) -> None:
        self._submit("Move segment edge", lambda s: s.set_segment_bounds(s.label(label_id), start, end), [])

    def set_video_class(self, cls: str) -> None:
        vid = self.video_id
        self._submit(f"Video class {cls}", lambda s: s.set_video_class(vid, cls), [])

    def set_review_status(self, status: str) -> None:
        vid = self.video_id
        self.review_status = status
        self._submit(
            f"Review status {status.replace('_', ' ')}", lambda s: s.set_review_status(vid, status), [],
            on_done=lambda _r: self.win.library_ctl.refresh() if hasattr(self.win, "library_ctl") else None,
        )  # fmt: skip

    # ---- reviewing the model ----------------------------------------------------------------------------------
    def suggestions_here(self) -> list[Label]:
        sug = [x for x in self.labels_here() if x.state == ReviewState.SUGGESTED]
        if self.hover is not None:
            hit = [x for x in sug if E.point_in_label(x, *self.hover)]
            if hit:
                return hit
        if sug:
            return sug
        return [
            x
            for x in self.segments_at(self.frame, ("segment", "video_class"))
            if x.state == ReviewState.SUGGESTED
        ]

    def _review(self, verb: str, reason: str | None = None) -> None:
        if self.blind:
            self.message.emit("Blind pass: the model's suggestions are hidden — reveal them first.")
            return
        labs = self.suggestions_here()
        if not labs:
            self.message.emit("No open suggestion here.")
            return
        ids, f = [x.id for x in labs], self.frame
        if verb == "accept":
            self._submit(f"Accept {len(ids)}", lambda s: s.accept(s.labels(ids)), [f])
        else:
            self._submit(f"Reject {len(ids)}", lambda s: s.reject(s.labels(ids), reason), [f])

    def accept(self) -> None:
        self._review("accept")

    def reject(self, reason: str | None = None) -> None:
        self._review("reject", reason)

    def edit(self) -> None:
        """E: start editing the suggestion under the cursor (mask: brush; box: select it for moving)."""
        labs = [x for x in self.suggestions_here() if x.kind in (LabelKind.MASK, LabelKind.BOX)]
        if not labs:
            self.message.emit("No mask or box suggestion here to edit.")
            return
        x = labs[0]
        self.current_class = x.class_name
        if x.kind == LabelKind.BOX:
            self.set_tool(Tool.BOX)
            self.select_box(x)
        else:
            self.set_tool(Tool.BRUSH)
        self.message.emit(
            f"Editing the model's {x.kind}: your changes keep it linked to the model (state edited)."
        )

    def bulk_accept(self) -> None:
        if self.blind:
            self.message.emit("Blind pass: reveal the model's suggestions before accepting them.")
            return
        if self.mark_in is not None and self.mark_out is not None:
            a, b = sorted((self.mark_in, self.mark_out))
        else:
            segs = self.segments_at(self.frame)
            if not segs:
                self.message.emit("Mark In/Out (I, O) or put the playhead in a segment to bulk-accept.")
                return
            a, b = segs[0].start_frame or 0, segs[0].end_frame or 0
        vid, thr = self.video_id, self.bulk_threshold
        self._submit(
            "Bulk accept", lambda s: s.bulk_accept(vid, a, b, thr), None,
            on_done=lambda n: self.message.emit(f"Accepted {n} suggestion(s) ≥ {thr:.2f} on frames {a + 1}–{b}."),
        )  # fmt: skip

    # ---- undo -------------------------------------------------------------------------------------------------
    def undo(self) -> None:
        self.tools.cancel()
        self._submit("Undo", lambda s: s.undo() or "nothing to undo", None, on_done=self.message.emit)

    def redo(self) -> None:
        self._submit("Redo", lambda s: s.redo() or "nothing to redo", None, on_done=self.message.emit)

    # ---- blind first pass -------------------------------------------------------------------------------------
    def set_blind(self, on: bool) -> None:
        if on == self.blind:
            return
        self.blind = on
        if on:
            self._hide_model()
            self.message.emit("Blind first pass: the model's output is hidden until you reveal it.")
        else:
            tracks = self.review_ctl.tracks
            if tracks is not None:
                self.player_widget.set_predictions(tracks.predictions, tracks.video_label)
                self.timeline.set_tracks(tracks.predictions, tracks.labels)
            self.message.emit(self.compare_with_model())
        self.refresh_frame()
        self.stateChanged.emit()

    def _hide_model(self) -> None:
        self.player_widget.set_predictions(None, None)
        tracks = self.review_ctl.tracks
        self.timeline.set_tracks(None, tracks.labels if tracks is not None else None)

    def compare_with_model(self) -> str:
        """Agreement between the reviewer's frames with a label and the model's suggestions, per frame."""
        n = self.frame_count
        if not n:
            return ""
        human = np.zeros(n, bool)
        model = np.zeros(n, bool)
        for f, labs in self.frames.items():
            if 0 <= f < n:
                human[f] = any(x.state in E.HUMAN_STATES for x in labs)
                model[f] = any(x.origin == "predicted" for x in labs)
        for s in self.segments:
            if s.kind == LabelKind.SEGMENT:
                sl = slice(max(0, s.start_frame or 0), min(n, s.end_frame or 0))
                if s.origin == "predicted":
                    model[sl] = True
                elif s.state in E.HUMAN_STATES:
                    human[sl] = True
        agree = float((human == model).mean())
        return (
            f"Revealed. You labelled {int(human.sum())} frame(s), the model {int(model.sum())}; "
            f"you agree on {agree:.0%} of frames."
        )
