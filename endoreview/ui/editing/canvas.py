"""Mouse handling of the correction tools on the frame view (an event filter on its viewport).

Navigate lets pan and zoom through untouched. Brush and eraser paint while the left button is held and save the
stroke on release (one undo step). Polygon adds a vertex per click and fills when the first vertex is clicked
again, on a double-click or on Enter (Esc / right-click cancels). Box draws a new box by dragging on empty frame,
moves a box dragged from inside and resizes it from a corner (one undo step per drag). Wheel zoom always works.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QPointF, Qt

from endoreview.services.editing import paint_stroke

if TYPE_CHECKING:
    from endoreview.ui.editing.controller import EditController


class Tool(StrEnum):
    NAVIGATE = "navigate"
    BRUSH = "brush"
    ERASER = "eraser"
    POLYGON = "polygon"
    BOX = "box"


_PRESS, _MOVE, _RELEASE, _DOUBLE = (
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseMove,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick,
)


class CanvasTools(QObject):
    def __init__(self, ctl: EditController) -> None:
        super().__init__(ctl)
        self.ctl = ctl
        self.tool = Tool.NAVIGATE
        self._stroke: list[tuple[float, float]] | None = None
        self._mask = None
        self._box_drag: tuple[str, tuple[float, float], tuple[float, float, float, float]] | None = None
        self.view = ctl.player_widget.view
        self.view.viewport().installEventFilter(self)
        self.view.installEventFilter(self)  # Enter / Esc while drawing a polygon
        self.view.viewport().setMouseTracking(True)

    @property
    def stroke_mask(self):  # np.ndarray | None
        """The mask being painted right now (None between strokes)."""
        return self._mask if self._stroke is not None else None

    # ---- coordinates ------------------------------------------------------------------------------------------
    def to_image(self, pos: QPointF) -> tuple[float, float]:
        p = self.view.vb.mapSceneToView(self.view.mapToScene(pos.toPoint()))
        return float(p.x()), float(p.y())

    def pixel(self) -> float:
        """Image pixels per screen pixel."""
        sx, _ = self.view.vb.viewPixelSize()
        return float(sx) if sx else 1.0

    # ---- event filter -----------------------------------------------------------------------------------------
    def eventFilter(self, obj, ev) -> bool:  # noqa: N802 - Qt API
        t = ev.type()
        if t == QEvent.Type.KeyPress and self.tool == Tool.POLYGON and self.ctl.layer.polygon:
            if ev.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.finish_polygon()
                return True
            if ev.key() == Qt.Key.Key_Escape:
                self.cancel()
                return True
        if obj is self.view:
            return False
        if t == QEvent.Type.Leave:  # the mouse left the frame: A / R / E act on the whole frame again
            self.ctl.hover = None
            self.ctl.layer.cursor = None
            self.ctl.layer.update()
            return False
        if t not in (_PRESS, _MOVE, _RELEASE, _DOUBLE) or not self.ctl.editable:
            return False
        pt = self.to_image(ev.position())
        self.ctl.hover = pt
        if self.tool == Tool.NAVIGATE:  # a click says what is under it; the view still pans and zooms
            if t == _PRESS and ev.button() == Qt.MouseButton.LeftButton:
                self.ctl.session.describe_at(self.ctl.frame, pt)
            return False
        layer = self.ctl.layer
        if t == _MOVE and not ev.buttons() & Qt.MouseButton.LeftButton:
            layer.cursor = pt
            layer.update()
            return False
        left = ev.button() == Qt.MouseButton.LeftButton or bool(ev.buttons() & Qt.MouseButton.LeftButton)
        if self.tool in (Tool.BRUSH, Tool.ERASER):
            return self._brush(t, pt, left)
        if self.tool == Tool.POLYGON:
            return self._polygon(t, pt, ev.button())
        if self.tool == Tool.BOX:
            return self._box(t, pt, left)
        return False

    # ---- brush / eraser ---------------------------------------------------------------------------------------
    def _brush(self, t: QEvent.Type, pt: tuple[float, float], left: bool) -> bool:
        value = 1 if self.tool == Tool.BRUSH else 0
        r = self.ctl.brush_radius
        if t == _PRESS and left:
            self._stroke = [pt]
            self._mask = paint_stroke(self.ctl.editable_mask(), [pt], r, value)
            self.ctl.preview_mask(self._mask)
        elif t == _MOVE and self._stroke is not None:
            self._mask = paint_stroke(self._mask, [self._stroke[-1], pt], r, value)
            self._stroke.append(pt)
            self.ctl.layer.cursor = pt
            self.ctl.preview_mask(self._mask)
        elif t == _RELEASE and self._stroke is not None:
            mask, self._stroke, self._mask = self._mask, None, None
            self.ctl.session.commit_mask(self.ctl.frame, mask, "Brush stroke" if value else "Erase")
        return True

    # ---- polygon ----------------------------------------------------------------------------------------------
    def _polygon(self, t: QEvent.Type, pt: tuple[float, float], button: Qt.MouseButton) -> bool:
        layer = self.ctl.layer
        if t == _PRESS and button == Qt.MouseButton.RightButton:
            self.cancel()
        elif t == _PRESS and button == Qt.MouseButton.LeftButton:
            pts = layer.polygon
            near = 8 * self.pixel()
            if len(pts) >= 3 and abs(pts[0][0] - pt[0]) <= near and abs(pts[0][1] - pt[1]) <= near:
                self.finish_polygon()
            else:
                pts.append(pt)
                layer.update()
        elif t == _DOUBLE and len(layer.polygon) >= 3:
            self.finish_polygon()
        return True

    def finish_polygon(self) -> None:
        pts = list(self.ctl.layer.polygon)
        self.ctl.layer.polygon = []
        self.ctl.layer.update()
        if len(pts) >= 3:
            self.ctl.fill_polygon(pts)

    def cancel(self) -> None:
        self.ctl.layer.polygon = []
        self.ctl.layer.rubber = None
        self._stroke = self._mask = self._box_drag = None
        self.ctl.refresh_frame()

    # ---- boxes ------------------------------------------------------------------------------------------------
    def _box(self, t: QEvent.Type, pt: tuple[float, float], left: bool) -> bool:
        layer = self.ctl.layer
        if t == _PRESS and left:
            hit, mode = self.ctl.session.box_hit(self.ctl.frame, pt, 10 * self.pixel())
            if hit is not None:
                self.ctl.session.select_box(hit)
                self._box_drag = (mode, pt, tuple(hit.bbox))  # type: ignore[arg-type]
            else:
                self.ctl.session.select_box(None)
                self._box_drag = ("new", pt, (pt[0], pt[1], pt[0], pt[1]))
        elif t == _MOVE and self._box_drag is not None:
            layer.rubber = self._dragged(pt)
            layer.update()
        elif t == _RELEASE and self._box_drag is not None:
            box = self._dragged(pt)
            mode, _start, before = self._box_drag
            self._box_drag = None
            layer.rubber = None
            changed = mode == "new" or max(abs(a - b) for a, b in zip(box, before)) >= 0.5
            if box[2] - box[0] >= 2 and box[3] - box[1] >= 2 and changed:
                self.ctl.session.commit_box(self.ctl.frame, box, mode)
            layer.update()
        return True

    def _dragged(self, pt: tuple[float, float]) -> tuple[float, float, float, float]:
        assert self._box_drag is not None
        mode, start, (x0, y0, x1, y1) = self._box_drag
        dx, dy = pt[0] - start[0], pt[1] - start[1]
        if mode == "new":
            box = (min(start[0], pt[0]), min(start[1], pt[1]), max(start[0], pt[0]), max(start[1], pt[1]))
        elif mode == "move":
            box = (x0 + dx, y0 + dy, x1 + dx, y1 + dy)
        else:  # a corner: "tl", "tr", "bl", "br"
            nx0 = x0 + dx if "l" in mode else x0
            nx1 = x1 + dx if "r" in mode else x1
            ny0 = y0 + dy if "t" in mode else y0
            ny1 = y1 + dy if "b" in mode else y1
            box = (min(nx0, nx1), min(ny0, ny1), max(nx0, nx1), max(ny0, ny1))
        return self.ctl.session.clip_box(box)
