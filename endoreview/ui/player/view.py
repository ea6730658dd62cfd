"""The frame view: a pyqtgraph ViewBox holding the frame image and the prediction overlay.

The image is always placed in *original* pixel coordinates (``setRect(0, 0, W, H)``), whether it came from the
proxy or the original, so masks and boxes (stored in original pixels) line up at every zoom level.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPainterPath, QPen

from core_model.contract import rle_decode_box
from endoreview.ui.palette import CHIP, CHIP_TEXT, HALO, colour_for


class FrameImageItem(pg.ImageItem):
    """An ImageItem that reports when a given frame has actually been painted."""

    painted = Signal(int, float)

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")
        self.frame_index = -1
        self._reported = -2

    def show_frame(self, index: int, image: np.ndarray, rect: QRectF) -> None:
        self.frame_index = index
        self.setImage(image, autoLevels=False, levels=None)
        self.setRect(rect)

    def paint(self, p, *args) -> None:  # Qt signature
        super().paint(p, *args)
        if self.frame_index != self._reported:
            self._reported = self.frame_index
            self.painted.emit(self.frame_index, time.perf_counter())


#: how far (frame pixels) the drawn outline of a model's mask may stray from the mask's pixel boundary. A model mask
#: upsampled to 1080p has a staircase outline of ~1,800 corners; stroking it antialiased cost ~13 ms per mask on the
#: GUI thread for every new frame while playing (frames were dropped), simplified within a pixel ~4 ms, and it looks
#: the same up to 1:1 (the fill follows the same outline).
OUTLINE_TOLERANCE_PX = 1.0


def mask_outline(rle: dict, tolerance: float = OUTLINE_TOLERANCE_PX) -> list[np.ndarray]:
    """Outer contours of an RLE mask as ``[K, 2]`` float arrays (x, y) in mask pixels, simplified within
    ``tolerance`` pixels (0: every corner of the pixel boundary)."""
    import cv2

    m, x0, y0 = rle_decode_box(rle)  # the columns it covers, not the whole frame
    if m.size == 0:
        return []
    # traced on the transposed crop, which is the decoded run order (no copy): its (x, y) are the mask's (y, x)
    contours, _ = cv2.findContours(np.ascontiguousarray(m.T), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if tolerance > 0:
        contours = [cv2.approxPolyDP(c, tolerance, True) for c in contours]
    return [c[:, 0, ::-1].astype(np.float64) + (x0, y0) for c in contours if len(c) >= 3]


def polygon_path(poly: np.ndarray, dx: float = 0.5, dy: float = 0.5) -> QPainterPath:
    """A closed path through ``poly`` ([K, 2] x, y pixel indices), shifted to pixel centres (+ ``dx``, ``dy``).
    Built from the arrays in one call (a polygon point by point in Python took ~2 ms per mask outline at 1080p,
    for every new frame the player shows)."""
    path = pg.arrayToQPath(poly[:, 0] + dx, poly[:, 1] + dy, connect="all")
    path.closeSubpath()
    return path


class OverlayItem(pg.GraphicsObject):
    """Masks (fill + two-tone outline), boxes with class and score chips, all in original pixel coordinates."""

    def __init__(self) -> None:
        super().__init__()
        self._rect = QRectF(0, 0, 1, 1)
        self._frame = -1
        self.masks: list[dict] = []
        self.boxes: list[dict] = []
        self.show_masks = True
        self.show_boxes = True
        self.threshold = 0.5
        self.known_classes: tuple[str, ...] = ()
        self._paths: OrderedDict[tuple, list[QPainterPath]] = OrderedDict()
        self._font = QFont()
        self._font.setPointSizeF(max(10.0, self._font.pointSizeF()))
        self._font.setBold(True)
        self.setZValue(10)

    def set_frame_rect(self, w: int, h: int) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(0, 0, w, h)

    def set_content(self, frame: int, masks: list[dict], boxes: list[dict]) -> None:
        if frame == self._frame and masks == self.masks and boxes == self.boxes:
            return  # the same frame's same output: no repaint (scrubbing asks again on every move)
        self._frame = frame
        self.masks, self.boxes = masks, boxes
        self.update()

    def visible_masks(self) -> list[dict]:
        return (
            [m for m in self.masks if float(m.get("score", 1.0)) >= self.threshold] if self.show_masks else []
        )

    def visible_boxes(self) -> list[dict]:
        return (
            [b for b in self.boxes if float(b.get("score", 1.0)) >= self.threshold] if self.show_boxes else []
        )

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._rect

    def _paths_for(self, k: int, rle: dict) -> list[QPainterPath]:
        key = (k, hash(str(rle.get("counts"))), tuple(rle.get("size", ())))
        if key in self._paths:
            self._paths.move_to_end(key)
            return self._paths[key]
        paths = [polygon_path(poly) for poly in mask_outline(rle)]
        self._paths[key] = paths
        while len(self._paths) > 256:
            self._paths.popitem(last=False)
        return paths

    def paint(self, p: QPainter, *args) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        halo = QPen(QColor(*HALO), 5)
        halo.setCosmetic(True)
        for k, m in enumerate(self.visible_masks()):
            col = QColor(*colour_for(str(m.get("label", "?")), self.known_classes))
            fill = QColor(col)
            fill.setAlpha(80)
            core = QPen(col, 2.5)
            core.setCosmetic(True)
            for path in self._paths_for(k, m["rle"]):
                p.fillPath(path, QBrush(fill))
                p.strokePath(path, halo)
                p.strokePath(path, core)
        chips: list[tuple[QPointF, str, QColor]] = []
        for b in self.visible_boxes():
            x0, y0, x1, y1 = (float(v) for v in b["bbox"])
            col = QColor(*colour_for(str(b.get("label", "?")), self.known_classes))
            core = QPen(col, 2.5)
            core.setCosmetic(True)
            r = QRectF(x0, y0, x1 - x0, y1 - y0)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.setPen(halo)
            p.drawRect(r)
            p.setPen(core)
            p.drawRect(r)
            chips.append(
                (
                    p.transform().map(QPointF(x0, y0)),
                    f"{b.get('label', '?')} {float(b.get('score', 0)):.2f}",
                    col,
                )
            )
        if chips:
            p.save()
            p.resetTransform()
            p.setFont(self._font)
            fm = QFontMetrics(self._font)
            for pt, text, col in chips:
                w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
                top = pt.y() - h if pt.y() - h >= 0 else pt.y()
                chip = QRectF(pt.x(), top, w, h)
                p.fillRect(chip, QColor(*CHIP))
                p.fillRect(QRectF(pt.x(), top, 4, h), col)
                p.setPen(QColor(*CHIP_TEXT))
                p.drawText(
                    chip.adjusted(7, 0, 0, 0),
                    int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft),
                    text,
                )
            p.restore()


class FrameView(pg.GraphicsLayoutWidget):
    """Zoomable, pannable view of one frame plus overlay. Wheel zooms, drag pans, :meth:`fit` resets."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setBackground("#101014")
        self.ci.setContentsMargins(0, 0, 0, 0)
        self.vb: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setDefaultPadding(0.0)
        self.image = FrameImageItem()
        self.overlay = OverlayItem()
        self.vb.addItem(self.image)
        self.vb.addItem(self.overlay)
        self._size = (0, 0)

    def show_frame(self, index: int, image: np.ndarray, frame_size: tuple[int, int]) -> None:
        w, h = frame_size
        first = self._size != (w, h)
        self.image.show_frame(index, image, QRectF(0, 0, w, h))
        if first:
            self._size = (w, h)
            self.overlay.set_frame_rect(w, h)
            self.fit()

    def clear_frame(self) -> None:
        self.image.clear()
        self.overlay.set_content(-1, [], [])
        self._size = (0, 0)

    def fit(self) -> None:
        w, h = self._size
        if w and h:
            self.vb.setRange(QRectF(0, 0, w, h), padding=0.0)

    def zoom(self, factor: float) -> None:
        """Zoom about the view centre (factor > 1 zooms in)."""
        self.vb.scaleBy((1.0 / factor, 1.0 / factor))
