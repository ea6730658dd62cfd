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

from core_model.contract import rle_decode
from endoreview.ui.palette import HALO
from endoreview.ui.player.view import polygon_path


@dataclass(frozen=True)
class DrawnMask:
    mask: np.ndarray | None  # uint8[H, W]; None: decoded from ``rle`` when it must be drawn
    colour: tuple[int, int, int]
    derived: bool = False  # propagated / interpolated
    rle: dict | None = None  # a saved mask (COCO RLE)

    @classmethod
    def saved(cls, rle: dict, colour: tuple[int, int, int], derived: bool = False) -> DrawnMask:
        return cls(None, colour, derived, rle)

    def pixels(self) -> np.ndarray:
        return self.mask if self.mask is not None else rle_decode(self.rle)

    def key(self) -> tuple | None:
        """What identifies this drawing without decoding it; None for a mask being painted (always redrawn)."""
        if self.mask is not None or self.rle is None:
            return None
        return str(self.rle.get("counts")), tuple(self.rle.get("size", ())), self.colour, self.derived


@dataclass(frozen=True)
class DrawnBox:
    bbox: tuple[float, float, float, float]
    colour: tuple[int, int, int]
    text: str
    derived: bool = False
    selected: bool = False


def _outline(mask: np.ndarray, x0: int = 0, y0: int = 0) -> list[QPainterPath]:
    """The outlines of ``mask`` (a crop whose top-left pixel is (x0, y0) of the frame), in frame coordinates."""
    import cv2

    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    return [polygon_path(c[:, 0, :].astype(np.float64), x0 + 0.5, y0 + 0.5) for c in contours if len(c) >= 2]


class LabelLayer(pg.GraphicsObject):
    HANDLE_PX = 7.0

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, 1, 1)
        self._image: QImage | None = None
        self._image_rect = QRectF()  # where the masks' image goes: the box around every mask, in frame pixels
        self._buffer: np.ndarray | None = None
        self._key: tuple | None = None  # the saved masks drawn now (set_masks skips redrawing the same ones)
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

    def set_boxes(self, boxes: list[DrawnBox]) -> None:
        """Draw ``boxes``; the same ones as now repaint nothing (the frame view repainted, frame and overlays, on
        every move of the playhead while scrubbing)."""
        if boxes != self.boxes:
            self.boxes = boxes
            self.update()

    def set_masks(self, masks: list[DrawnMask]) -> None:
        """Draw ``masks`` (the frame's, filled and outlined). Saved masks the same as those drawn now are not
        decoded and composed again: the frame is redrawn after every action, change of state and presented frame
        (four times per accept), which at 1080p cost tens of milliseconds each time."""
        keys = tuple(m.key() for m in masks)
        key = keys if all(k is not None for k in keys) else None
        if key is not None and key == self._key:
            return
        self._key = key
        drawn = [(m, on) for m in masks if (on := m.pixels() > 0).any()]
        if not drawn:
            self._image, self._buffer, self._paths = None, None, []
            self.update()
            return
        anyon = np.logical_or.reduce([on for _, on in drawn])
        rows, cols = np.flatnonzero(anyon.any(axis=1)), np.flatnonzero(anyon.any(axis=0))
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        # only the box around the masks (a polyp, not the frame)
        rgba = np.zeros((y1 - y0, x1 - x0, 4), np.uint8)
        paths = []
        for m, on in drawn:
            crop = on[y0:y1, x0:x1]
            rgba[crop, :3] = m.colour
            rgba[crop, 3] = 70 if m.derived else 95
            paths += [(p, QColor(*m.colour), m.derived) for p in _outline(crop, x0, y0)]
        self._buffer = np.ascontiguousarray(rgba)
        self._image = QImage(
            self._buffer.data, x1 - x0, y1 - y0, 4 * (x1 - x0), QImage.Format.Format_RGBA8888
        )
        self._image_rect = QRectF(x0, y0, x1 - x0, y1 - y0)
        self._paths = paths
        self.update()

    def paint(self, p: QPainter, *args) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        if self._image is not None:
            p.drawImage(self._image_rect, self._image)
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
