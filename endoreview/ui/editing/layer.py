"""What the reviewer's own labels look like on the frame, and the tools' rubber bands.

:class:`LabelLayer` draws, in original pixel coordinates over the frame: the reviewer's masks of the current frame
(filled, with a two-tone outline; propagated ones dashed so they read as "machine-carried, check me"), the mask
being painted, boxes (solid; interpolated dashed; the selected one with resize handles), the polygon being drawn
and the brush outline under the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QPolygonF

from endoreview.ui.palette import HALO


@dataclass(frozen=True)
class DrawnMask:
    mask: np.ndarray  # uint8[H, W]
    colour: tuple[int, int, int]
    derived: bool = False  # propagated / interpolated


@dataclass(frozen=True)
class DrawnBox:
    bbox: tuple[float, float, float, float]
    colour: tuple[int, int, int]
    text: str
    derived: bool = False
    selected: bool = False


def _outline(mask: np.ndarray) -> list[QPainterPath]:
    import cv2

    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    out = []
    for c in contours:
        if len(c) < 2:
            continue
        path = QPainterPath()
        path.addPolygon(QPolygonF([QPointF(float(x) + 0.5, float(y) + 0.5) for x, y in c[:, 0, :]]))
        path.closeSubpath()
        out.append(path)
    return out


class LabelLayer(pg.GraphicsObject):
    HANDLE_PX = 7.0

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, 1, 1)
        self._image: QImage | None = None
        self._buffer: np.ndarray | None = None
        self._paths: list[tuple[QPainterPath, QColor, bool]] = []
        self.boxes: list[DrawnBox] = []
        self.polygon: list[tuple[float, float]] = []
        self.cursor: tuple[float, float] | None = None
        self.brush_radius = 0.0
        self.rubber: tuple[float, float, float, float] | None = None
        self.setZValue(20)

    def set_frame_rect(self, w: int, h: int) -> None:
        """A new video's frame size: nothing drawn yet."""
        self.prepareGeometryChange()
        self._rect = QRectF(0, 0, w, h)
        self.boxes = []
        self.set_masks([])

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._rect

    def set_masks(self, masks: list[DrawnMask]) -> None:
        if not masks:
            self._image, self._buffer, self._paths = None, None, []
            self.update()
            return
        h, w = masks[0].mask.shape
        rgba = np.zeros((h, w, 4), np.uint8)
        paths = []
        for m in masks:
            on = m.mask > 0
            rgba[on, :3] = m.colour
            rgba[on, 3] = 70 if m.derived else 95
            paths += [(p, QColor(*m.colour), m.derived) for p in _outline(m.mask)]
        self._buffer = np.ascontiguousarray(rgba)
        self._image = QImage(self._buffer.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self._paths = paths
        self.update()

    def paint(self, p: QPainter, *args) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._image is not None:
            p.drawImage(self._rect, self._image)
        halo = QPen(QColor(*HALO), 4)
        halo.setCosmetic(True)
        for path, col, derived in self._paths:
            core = QPen(col, 2)
            core.setCosmetic(True)
            if derived:
                core.setStyle(Qt.PenStyle.DashLine)
            p.strokePath(path, halo)
            p.strokePath(path, core)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for b in self.boxes:
            x0, y0, x1, y1 = b.bbox
            r = QRectF(x0, y0, x1 - x0, y1 - y0)
            core = QPen(QColor(*b.colour), 3 if b.selected else 2)
            core.setCosmetic(True)
            if b.derived:
                core.setStyle(Qt.PenStyle.DashLine)
            p.setPen(halo)
            p.drawRect(r)
            p.setPen(core)
            p.drawRect(r)
            if b.selected:
                self._handles(p, r, QColor(*b.colour))
        if self.rubber is not None:
            x0, y0, x1, y1 = self.rubber
            pen = QPen(QColor(255, 255, 255), 2, Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            p.setPen(halo)
            p.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
            p.setPen(pen)
            p.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        if self.polygon:
            pts = [QPointF(x, y) for x, y in self.polygon]
            if self.cursor is not None:
                pts.append(QPointF(*self.cursor))
            pen = QPen(QColor(255, 255, 255), 2)
            pen.setCosmetic(True)
            p.setPen(halo)
            p.drawPolyline(QPolygonF(pts))
            p.setPen(pen)
            p.drawPolyline(QPolygonF(pts))
            scale = max(1e-6, p.transform().m11())
            p.setBrush(QBrush(QColor(255, 255, 255)))
            for q in pts[: len(self.polygon)]:
                p.drawEllipse(q, 3.0 / scale, 3.0 / scale)
            p.setBrush(Qt.BrushStyle.NoBrush)
        if self.cursor is not None and self.brush_radius > 0:
            pen = QPen(QColor(255, 255, 255), 1.5)
            pen.setCosmetic(True)
            p.setPen(halo)
            p.drawEllipse(QPointF(*self.cursor), self.brush_radius, self.brush_radius)
            p.setPen(pen)
            p.drawEllipse(QPointF(*self.cursor), self.brush_radius, self.brush_radius)

    def _handles(self, p: QPainter, r: QRectF, col: QColor) -> None:
        scale = max(1e-6, p.transform().m11())
        s = self.HANDLE_PX / scale
        p.setBrush(QBrush(col))
        p.setPen(QPen(QColor(*HALO), 0))
        for c in (r.topLeft(), r.topRight(), r.bottomLeft(), r.bottomRight()):
            p.drawRect(QRectF(c.x() - s / 2, c.y() - s / 2, s, s))
        p.setBrush(Qt.BrushStyle.NoBrush)
