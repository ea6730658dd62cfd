"""The correction tools' Qt glue: keys and mouse → the review session; the session's changes → the frame view.

The state (the open video's labels, suggestions, marks, selection, blind pass) lives in the Qt-free
:class:`~endoreview.services.review_session.ReviewSession`; this controller holds only the tools (current tool,
brush size) and draws what the session reports: the reviewer's labels on the label layer, the open suggestions on the
player's overlay. The player's overlay controls (confidence slider, mask / box switches) are forwarded to the
session, so what is hidden there can be neither hit nor reviewed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from endoreview.services import editing as E
from endoreview.services.records import LabelKind
from endoreview.services.review_session import EXPECTED, Change, ReviewSession
from endoreview.ui.editing.canvas import CanvasTools, Tool
from endoreview.ui.editing.layer import DrawnBox, DrawnMask, LabelLayer
from endoreview.ui.palette import colour_for

BRUSH_SIZES = (2, 3, 4, 6, 8, 11, 15, 20, 27, 36, 48, 64)


class _Bridge(QObject):
    """Runs the writer's deliveries on the GUI thread."""

    call = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._run)

    def _run(self, fn: Callable[[], None]) -> None:
        fn()


class EditController(QObject):
    message = Signal(str)
    stateChanged = Signal()  # tool, class, brush, marks, selection, blind, undo availability
    labelsChanged = Signal()  # a snapshot arrived

    def __init__(
        self, store: Callable[[], Any], runner: Any, player: Any, player_widget: Any, review_ctl: Any,
        timeline: Any, on_status_saved: Callable[[], None], parent: QObject,
    ) -> None:  # fmt: skip
        """``store``: the open store (calls refused on the GUI thread); ``on_status_saved``: after a review status is
        stored (the library refreshes); ``parent``: the main window (its closing calls :meth:`shutdown`)."""
        super().__init__(parent)
        self.store, self.runner, self.player, self.player_widget = store, runner, player, player_widget
        self.review_ctl, self.timeline, self._on_status_saved = review_ctl, timeline, on_status_saved
        self._bridge, self._opened_tracks = _Bridge(), False
        self.session = ReviewSession(lambda: E.EditingService(self.store()), self._bridge.call.emit)
        self.session.subscribe(self._on_change)
        self.writer = self.session.writer
        self.layer = LabelLayer()
        self.player_widget.view.vb.addItem(self.layer)
        self.tools = CanvasTools(self)
        self.brush_index, self.grow_px = 5, 2
        self.hover: tuple[float, float] | None = None
        self.review_ctl.videoOpened.connect(self._on_video)
        self.review_ctl.frameShown.connect(lambda _info: self.session.load())
        self.review_ctl.tracksLoaded.connect(self._on_tracks)
        self.player.framePresented.connect(lambda i, _img, _full: self.refresh_frame())
        self.player.frameChanged.connect(lambda _i: self.refresh_frame())
        pw = self.player_widget
        for w in (pw.chk_masks, pw.chk_boxes):
            w.toggled.connect(self._sync_view)
        pw.threshold.valueChanged.connect(self._sync_view)
        self._sync_view()
        self._reload = QTimer(self)  # the timeline / overlays re-read after edits, at most twice a second
        self._reload.setSingleShot(True)
        self._reload.setInterval(500)
        self._reload.timeout.connect(self.review_ctl.reload_tracks)

    def shutdown(self) -> None:
        """The window is closing (its question about running jobs answered): every edit made is on disk first."""
        self._reload.stop()
        self.writer.shutdown(wait=True)

    # ---- the session's changes --------------------------------------------------------------------------------
    def _on_change(self, kind: Change, payload: Any) -> None:
        if kind == Change.MESSAGE:
            self.message.emit(str(payload))
        elif kind == Change.LABELS:
            self.refresh_frame()
            if payload == EXPECTED:  # on screen now, before the writer saving it takes the interpreter lock
                self.player_widget.view.viewport().repaint()
            self.labelsChanged.emit()
            quiet = getattr(payload, "name", None) in (None, "Load labels", "Refresh")  # reads, not edits
            if not quiet and not self._reload.isActive():
                self._reload.start()
        else:
            self.refresh_frame()
            self.stateChanged.emit()

    def _sync_view(self, *_args: Any) -> None:
        pw = self.player_widget
        self.session.set_view(
            pw.threshold.value() / 100.0, pw.chk_masks.isChecked(), pw.chk_boxes.isChecked()
        )

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def editable(self) -> bool:
        return self.session.editable

    @property
    def loaded(self) -> bool:
        return self.session.loaded

    @property
    def video_id(self) -> int | None:
        return self.session.video_id

    @property
    def frame(self) -> int:
        """The frame on screen (until a new one is decoded the last stays): what is drawn and edited."""
        return self.player.shown[0] if self.player.shown else self.player.current

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

    # ---- opening and drawing ----------------------------------------------------------------------------------
    def _on_video(self, info: Any) -> None:
        self.layer.set_frame_rect(info.width, info.height)  # and clears it
        # the labels are read once its first frame is on screen (ReviewController.frameShown)
        self.session.open(info.video_id, info.width, info.height, info.frame_count, info.path, load=False)
        self._opened_tracks = False

    def _on_tracks(self, _tracks: Any) -> None:
        if self.session.blind:
            self._hide_model()
        if self._opened_tracks:  # output since opening (what opened with it is read already)
            self.session.model_output_changed()
        self._opened_tracks = True
        # the player widget has just drawn the track's overlay (a stored run's holds no masks or boxes): the frame
        # shows what the session holds again. The tracks come after the labels when a video opens.
        self.refresh_frame()

    def refresh_frame(self) -> None:
        if self.session.video_id is None:
            return
        self.session.set_focus(self.frame)  # the model's suggestions around this frame are read if not held
        live = self.tools.stroke_mask  # a stroke in progress stays drawn when the frame is repainted
        self._draw(working=live if live is not None else self.session.working.get(self.frame))
        self._override_overlay()

    def preview_mask(self, mask: np.ndarray) -> None:
        self._draw(working=mask)

    def _colour(self, cls: str) -> tuple[int, int, int]:
        return colour_for(cls, self.session.classes)

    def _draw(self, working: np.ndarray | None) -> None:
        s, f = self.session, self.frame
        masks = [
            DrawnMask.saved(x.rle, self._colour(x.class_name), s.derived(x))
            for x in s.human_masks_at(f)
            if working is None or x.class_name != s.current_class
        ]
        if working is not None:
            masks.append(DrawnMask(working, self._colour(s.current_class)))
        self.layer.set_masks(masks)
        sel = s.selected_box.id if s.selected_box is not None else None
        self.layer.set_boxes([
            DrawnBox(x.bbox, self._colour(x.class_name), x.class_name, s.derived(x), x.id == sel)  # type: ignore[arg-type]
            for x in s.drawn_boxes_at(f)
        ])  # fmt: skip

    def _override_overlay(self) -> None:
        """The model's layer shows only what is still open (suggested) — nothing during a blind pass."""
        track = self.player_widget.track
        streamed = track is not None and (self.frame in track.masks or self.frame in track.boxes)
        # a stored run's masks and boxes are only in the session (read around this frame); output a job is still
        # streaming is in the track until our snapshot has caught up with it
        if self.session.snapshot_current or not streamed:
            self.player_widget.view.overlay.set_content(self.frame, *self.session.overlay_content(self.frame))

    # ---- actions: the tools and keys call these; the session does the rest -----------------------------------
    def editable_mask(self, frame: int | None = None) -> np.ndarray:
        return self.session.editable_mask(self.frame if frame is None else frame)

    def fill_polygon(self, points: list[tuple[float, float]]) -> None:
        self.session.fill_polygon(self.frame, points)

    def propagate(self, forward: bool) -> None:
        self.session.propagate(self.frame, forward)

    def set_review_status(self, status: str) -> None:
        self.session.set_review_status(status, on_done=lambda _r: self._on_status_saved())

    def accept(self) -> None:
        self.session.review("accept", self.frame, self.hover)

    def reject(self, reason: str | None = None) -> None:
        self.session.review("reject", self.frame, self.hover, reason)

    def undo(self) -> None:
        self.tools.cancel()
        self.session.undo()

    def edit(self) -> None:
        """E: start editing the visible suggestion under the cursor (mask: brush; box: select it for moving)."""
        x = self.session.edit_target(self.frame, self.hover)
        if x is None:
            self.message.emit("No mask or box suggestion here to edit.")
            return
        self.session.current_class = x.class_name
        self.set_tool(Tool.BOX if x.kind == LabelKind.BOX else Tool.BRUSH)
        if x.kind == LabelKind.BOX:
            self.session.select_box(x)
        self.message.emit(
            f"Editing the model's {x.kind}: your changes keep it linked to the model (state edited)."
        )

    # ---- blind first pass -------------------------------------------------------------------------------------
    def set_blind(self, on: bool) -> None:
        if on:
            self._hide_model()
        elif self.session.blind and (tracks := self.review_ctl.tracks) is not None:
            self.player_widget.set_predictions(tracks.predictions, tracks.video_label)
            self.timeline.set_tracks(tracks.predictions, tracks.labels)
        self.session.set_blind(on)

    def _hide_model(self) -> None:
        self.player_widget.set_predictions(None, None)
        tracks = self.review_ctl.tracks
        self.timeline.set_tracks(None, tracks.labels if tracks is not None else None, known=False)
