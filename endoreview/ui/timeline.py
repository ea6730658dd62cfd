"""The multi-lane timeline under the player (pyqtgraph).

Lanes, top to bottom: per-class probabilities, detection confidence, label segments coloured by review state,
review progress, and markers where the model and the reviewer disagree. The x axis is the frame index.

Mouse: click or drag with the left button to seek, wheel to zoom in time, right-drag to pan, double-click to show
the whole video. The playhead line can be dragged too and follows playback (the view scrolls to keep it visible).
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QFontMetrics, QPen
from PySide6.QtWidgets import QGraphicsItem, QLabel

from endoreview.ui.palette import STATE_COLOURS, colour_for, hex_colour
from endoreview.ui.tracks import LabelTrack, PredictionTrack, disagreements

LANES = (
    ("Class probability", 1.6),
    ("Detection", 1.0),
    ("Labels", 0.8),
    ("Reviewed", 0.4),
    ("Disagree", 0.5),
    ("", 0.75),  # the legend's own row: it never covers a lane
)
GAP = 0.15
CLASS_SLOTS = 4  # class curves made with the timeline (a video with more classes makes the rest once)
GRID_ALPHA = 0.15  # the time grid's strongest lines
GRID_LEVELS = 3  # tick levels the grid draws (minutes, ten seconds, seconds …)


def lane_extents() -> dict[str, tuple[float, float]]:
    """Lane name -> (y0, y1), first lane on top."""
    out, y = {}, 0.0
    for name, h in reversed(LANES):
        if name:  # the unnamed bottom row holds the legend
            out[name] = (y, y + h)
        y += h + GAP
    return out


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of True runs."""
    if mask.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return starts, ends - starts


class TimeAxis(pg.AxisItem):
    """Bottom axis in video time (m:ss, with tenths when zoomed in); the x values stay frame indices."""

    def __init__(self) -> None:
        super().__init__("bottom")
        self.fps = 30.0

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802 - pyqtgraph API
        """Ticks at round times (1 s, 5 s, 1 min …), not at round frame numbers."""
        fps = max(self.fps, 1e-6)
        levels = super().tickSpacing(minVal / fps, maxVal / fps, size)
        return [(spacing * fps, offset * fps) for spacing, offset in levels]

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph API
        fine = spacing / max(self.fps, 1e-6) < 1.0
        out = []
        for v in values:
            t = max(0.0, v / max(self.fps, 1e-6))
            m, sec = divmod(t, 60)
            out.append(f"{int(m)}:{sec:04.1f}" if fine else f"{int(m)}:{int(round(sec)):02d}")
        return out


class _SeekViewBox(pg.ViewBox):
    seekRequested = Signal(float)

    def __init__(self) -> None:
        super().__init__(enableMenu=False)
        self.setMouseEnabled(x=True, y=False)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph API
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.seekRequested.emit(self.mapSceneToView(ev.scenePos()).x())
        else:
            super().mouseClickEvent(ev)

    def mouseDoubleClickEvent(self, ev) -> None:  # noqa: N802
        self.autoRange(padding=0)

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.seekRequested.emit(self.mapSceneToView(ev.scenePos()).x())
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = self.mapSceneToView(ev.lastScenePos()).x() - self.mapSceneToView(ev.scenePos()).x()
            self.translateBy(x=delta)
        else:
            super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev, axis=None) -> None:  # noqa: N802
        super().wheelEvent(ev, axis=0)


def _bars(pen: Any) -> pg.BarGraphItem:
    return pg.BarGraphItem(x0=[], width=[], y0=0, height=1, pen=pen)


def _class_curve() -> pg.PlotDataItem:
    return pg.PlotDataItem(connect="finite")


def _state_bars() -> pg.BarGraphItem:
    return _bars(pg.mkPen("#15151b"))


def _per_pixel(item: pg.PlotDataItem) -> None:
    """Downsample by view to one min/max pair per screen pixel (pyqtgraph's default keeps 5 per pixel: 18,000
    antialiased segments per lane for a 30-minute run at full view, ~45 ms a repaint here)."""
    item.opts["autoDownsampleFactor"] = 1.0
    item.setDownsampling(auto=True, method="peak")
    # one min/max pair per pixel is vertical strokes: antialiasing them (the app's default for the overlays) cost
    # ~16 ms a lane per repaint at 1366 px, so zooming a 30-minute run in the app managed ~5 steps a second
    item.opts["antialias"] = False


class TimelineWidget(pg.PlotWidget):
    seekRequested = Signal(int)

    def __init__(self, parent=None) -> None:
        self._vb = _SeekViewBox()
        self.time_axis = TimeAxis()
        super().__init__(parent, viewBox=self._vb, background="#15151b", axisItems={"bottom": self.time_axis})
        self.frame_count = 0
        self.fps = 30.0
        self.threshold = 0.5
        self.pred: PredictionTrack | None = None
        self.labels: LabelTrack | None = None
        self.disagree_frames = np.zeros(0, np.int64)
        self._items: list[pg.GraphicsObject] = []  # the lanes' items drawn now
        self._lanes: dict[str, pg.GraphicsObject] = {}  # every lane item made so far, by what it draws
        self._legend: list[tuple[str, str, tuple]] = []
        self._x = np.zeros(0, np.float64)
        self._det = np.zeros(0, np.float64)  # the Detection lane's values (lane coordinates), every frame
        self._known = False  # whether the tracks drawn are the video's (not yet read while it opens)
        pi = self.getPlotItem()
        pi.hideButtons()
        # the time grid is drawn by lane items, not by the axis (pyqtgraph's showGrid): an axis with a grid covers
        # the lanes, so every playhead move repainted it, replaying its labels and lines (~3 ms of each of the ~60
        # repaints a second while playing or scrubbing, with the interpreter lock held)
        self.grid = [pg.PlotCurveItem(connect="pairs", antialias=False) for _ in range(GRID_LEVELS)]
        pi.setMenuEnabled(False)
        ext = lane_extents()
        left = pi.getAxis("left")
        left.setTicks([[((a + b) / 2, name) for name, (a, b) in ext.items()]])
        # wide enough for the longest lane name in the current font (pyqtgraph drops labels that do not fit)
        fm = QFontMetrics(left.font() if left.style.get("tickFont") is None else left.style["tickFont"])
        left.setWidth(max(fm.horizontalAdvance(name) for name, _ in LANES) + 24)
        left.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)  # it never changes with the view
        self.empty_text = pg.TextItem("", color="#b0b0b8", anchor=(0.5, 0.5))
        self.empty_text.setZValue(40)
        self._vb.addItem(self.empty_text, ignoreBounds=True)
        top = max(b for _, b in ext.values())
        self._vb.setYRange(-0.05, top + 0.05, padding=0)
        # the lanes' faint backgrounds: one item of plain rectangles, resized with the video. (They were one
        # LinearRegionItem per lane: ten InfiniteLines whose bounds pyqtgraph recomputes at every change of view,
        # a third of the GUI thread's time when a 30-minute video opened.)
        lanes = [(a, b) for name, (a, b) in ext.items() if name]
        self.bands = pg.BarGraphItem(
            x0=np.zeros(len(lanes)),
            width=np.ones(len(lanes)),
            y0=np.array([a for a, _ in lanes]),
            height=np.array([b - a for a, b in lanes]),
            brush=pg.mkBrush(255, 255, 255, 8),
            pen=pg.mkPen(None),
        )
        self.bands.setZValue(-20)
        self.bands.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self.addItem(self.bands)
        for item in self.grid:
            item.setZValue(-10)
            item.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
            self.addItem(item, ignoreBounds=True)
        self.playhead = pg.InfiniteLine(
            0, angle=90, movable=True, pen=pg.mkPen("#ffffff", width=2), hoverPen=pg.mkPen("#00e5ff", width=3)
        )
        self.playhead.setZValue(50)
        # the frame the playhead stands for (the line may lag it within a pixel column)
        self.playhead_frame = 0
        self.addItem(self.playhead)
        self.playhead.sigDragged.connect(lambda line: self.seekRequested.emit(self._clamp(line.value())))
        self._vb.seekRequested.connect(lambda x: self.seekRequested.emit(self._clamp(x)))
        self.setMinimumHeight(150)
        # one row, bottom right, in its own row under the lanes: a label over the plot, not pyqtgraph's legend (a
        # sample item and a label item per entry, ~12 ms to rebuild whenever a video with other classes opened)
        self.legend = QLabel(self)
        self.legend.setObjectName("timelineLegend")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setStyleSheet("background: rgba(20, 20, 28, 220); color: #ddd; padding: 1px 6px;")
        self.legend.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.legend.hide()
        self._vb.sigXRangeChanged.connect(lambda *_: (self._view_changed(), self._fit_pens()))
        self._vb.sigResized.connect(lambda *_: (self._view_changed(), self._place_legend()))
        # every lane's item is made now, hidden until it has something to draw: making and parenting pyqtgraph
        # items took ~40 ms of the GUI thread when the first video's tracks arrived
        self._make_lanes(CLASS_SLOTS)

    def _clamp(self, x: float) -> int:
        return int(max(0, min(self.frame_count - 1, round(x)))) if self.frame_count else 0

    # ---- content ----------------------------------------------------------------------------------------------
    def set_video(self, frame_count: int, fps: float) -> None:
        self.frame_count, self.fps = int(frame_count), float(fps or 30.0)
        self.time_axis.fps = self.fps
        self._vb.setLimits(xMin=-0.5, xMax=max(1, frame_count) + 0.5, minXRange=min(30, max(2, frame_count)))
        self._vb.setXRange(0, max(1, frame_count), padding=0)
        self.bands.setOpts(x0=np.full(len(self.bands.opts["y0"]), -0.5), width=max(1, frame_count) + 1.0)
        self.set_tracks(None, None, known=False)

    def set_tracks(self, pred: PredictionTrack | None, labels: LabelTrack | None, known: bool = True) -> None:
        """``known=False``: the model's output is not read yet (a video opening) or hidden (a blind pass): the
        lanes are empty without saying the video has none (an analysed video said so until its tracks came)."""
        self.pred, self.labels, self._known = pred, labels, known
        self.redraw()

    def redraw(self) -> None:
        """Draw the lanes for the current tracks. The lanes' items are kept and given new data: creating,
        parenting and removing pyqtgraph items (with their legend entries) was most of the ~30 ms a redraw took on
        a 30-minute run, and it ran on the GUI thread while the video opened."""
        shown: list[pg.GraphicsObject] = []
        legend: list[tuple[str, str, tuple]] = []  # (kind, name, colour) in order
        ext = lane_extents()
        n = self.frame_count
        if self._x.size != n:
            self._x = np.arange(n, dtype=np.float64)
        x = self._x
        pred, labels = self.pred, self.labels
        self._det = np.zeros(0, np.float64)
        if self._known and (pred is None or pred.empty):
            a, b = ext["Detection"]
            self.empty_text.setText(
                "No model output for this video yet: Analyse (Ctrl+R) runs the model in the background."
            )
            self.empty_text.setPos(n / 2, (a + b) / 2)
        else:
            self.empty_text.setText("")
        if pred is not None and n:
            a, b = ext["Class probability"]
            width = self._curve_width()
            for k, cls in enumerate(pred.classes):
                col = colour_for(cls, tuple(pred.classes))
                # made with the widget for the first few classes
                item = self._lane(f"class:{k}", _class_curve)
                item.setPen(pg.mkPen(col, width=width))
                item.setData(x, a + pred.probs[:, k] * (b - a))
                shown.append(item)
                legend.append(("class", cls, col))
            y = a + self.threshold * (b - a)
            # across the whole video (the view never shows past it): a two-point curve, not an InfiniteLine
            thr = self._lanes["threshold"]
            thr.setData([-0.5, n + 0.5], [y, y])
            shown.append(thr)
            a, b = ext["Detection"]
            fill = self._lanes["detection"]
            self._det = a + np.nan_to_num(pred.det_score, nan=0.0) * (b - a)
            self._draw_detection()
            shown.append(fill)
        if labels is not None and n:
            a, b = ext["Labels"]
            by_state: dict[str, list] = {}
            for s in labels.segments:
                by_state.setdefault(s.state, []).append(s)
            for state, segs in by_state.items():
                col = STATE_COLOURS.get(state, (200, 200, 200))
                bars = self._lane(f"state:{state}", _state_bars)
                bars.setOpts(
                    x0=np.array([s.start for s in segs], np.float64),
                    width=np.array([s.end - s.start for s in segs], np.float64),
                    y0=a,
                    height=b - a,
                    brush=pg.mkBrush(*col, 200),
                )
                shown.append(bars)
                legend.append(("state", state, col))
            a, b = ext["Reviewed"]
            starts, lengths = _runs(labels.reviewed)
            if starts.size:
                done = self._lanes["reviewed"]
                done.setOpts(
                    x0=starts, width=lengths, y0=a, height=b - a, brush=pg.mkBrush(102, 187, 106, 220)
                )
                shown.append(done)
        self.disagree_frames = (
            disagreements(pred, labels, self.threshold) if (pred and labels) else np.zeros(0, np.int64)
        )
        if self.disagree_frames.size:
            a, b = ext["Disagree"]
            marks = self._lanes["disagree"]
            marks.setData(self.disagree_frames.astype(float), np.full(self.disagree_frames.size, (a + b) / 2))
            shown.append(marks)
        drawn = {id(it) for it in shown}
        for item in self._lanes.values():
            item.setVisible(id(item) in drawn)
        self._items = shown
        if legend != self._legend:
            self._legend = legend
            self.legend.setText(
                "&nbsp;&nbsp;".join(
                    f"<span style='color:{hex_colour(col)}'>{'&#9473;' if kind == 'class' else '&#9632;'}</span>"
                    f"&nbsp;{escape(name)}"
                    for kind, name, col in legend
                )
            )
            self.legend.setVisible(bool(legend))
            self.legend.adjustSize()
            self._place_legend()

    def _place_legend(self) -> None:
        """Bottom right of the lanes' area, in the legend's own row."""
        rect = self.mapFromScene(self._vb.sceneBoundingRect()).boundingRect()
        self.legend.move(rect.right() - self.legend.width() - 6, rect.bottom() - self.legend.height() - 1)

    def _make_lanes(self, classes: int) -> None:
        """The lanes' items, hidden: ``classes`` class curves (a video with more classes makes the rest when drawn),
        the threshold, the Detection fill, the review states' bars, the Reviewed bars and the Disagree markers."""
        a, _ = lane_extents()["Detection"]
        for k in range(classes):
            self._lane(f"class:{k}", _class_curve)
        self._lane("threshold", lambda: pg.PlotCurveItem(pen=pg.mkPen("#888", style=Qt.PenStyle.DashLine)))
        self._lane(
            "detection",
            lambda: pg.PlotDataItem(
                pen=pg.mkPen("#00e5ff", width=1),
                fillLevel=a,
                brush=pg.mkBrush(0, 229, 255, 60),
                antialias=False,
            ),
            per_pixel=False,
        )
        for state in STATE_COLOURS:
            self._lane(f"state:{state}", _state_bars)
        self._lane("reviewed", lambda: _bars(pg.mkPen(None)))
        self._lane(
            "disagree",
            lambda: pg.ScatterPlotItem(
                symbol="t", size=12, brush=pg.mkBrush("#ff5252"), pen=pg.mkPen("#15151b")
            ),
        )

    def _lane(self, key: str, make: Callable[[], pg.GraphicsObject], per_pixel: bool = True) -> Any:
        """The item drawing ``key`` (a class's curve, a review state's bars …), made and added the first time;
        ``per_pixel``: a curve downsampled by pyqtgraph to what is in view (the Detection lane does its own)."""
        item = self._lanes.get(key)
        if item is None:
            item = self._lanes[key] = make()
            item.setVisible(False)
            self.addItem(item)
            if per_pixel and isinstance(item, pg.PlotDataItem):
                _per_pixel(item)
                # a 30-minute run: draw only what is in view (54,000 frames otherwise)
                item.setClipToView(True)
            # static lanes are blitted from a cache when only the playhead moves
            for it in (item, getattr(item, "curve", None), getattr(item, "scatter", None)):
                if it is not None:
                    it.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        return item

    def _curve_width(self) -> int:
        """The class curves' pen: 2 px where the view shows frames one by one, 1 px where each pixel column holds
        several frames (a 2 px pen leaves Qt's fast line path: ~3.5 ms a curve per repaint over 54,000 frames,
        and the dense view is a band of strokes either way)."""
        (x0, x1), _ = self._vb.viewRange()
        return 2 if (x1 - x0) <= max(1.0, self._vb.width()) else 1

    def _fit_pens(self) -> None:
        if self.pred is None:
            return
        width = self._curve_width()
        for k in range(len(self.pred.classes)):
            item = self._lanes[f"class:{k}"]
            pen = item.opts["pen"]
            if isinstance(pen, QPen) and pen.widthF() != width:
                pen = QPen(pen)
                pen.setWidthF(width)
                item.setPen(pen)

    def _draw_detection(self) -> None:
        """The Detection lane for the frames in view: the highest score of each pixel's frames, filled down to the
        lane's floor. pyqtgraph's own downsampling keeps a min/max pair per pixel, and filling that zigzag took
        ~20 ms a repaint at 1366 px (54,000 frames): the tallest part of the repaint after a 30-minute video opened,
        and of each zoom step. The upper edge of that fill is this envelope, 1 ms."""
        fill = self._lanes.get("detection")
        det = self._det
        if fill is None or not det.size:
            return
        (x0, x1), _ = self._vb.viewRange()
        lo, hi = max(0, int(np.floor(x0))), min(det.size, int(np.ceil(x1)) + 1)
        if hi <= lo:
            fill.setData([], [])
            return
        px = max(1, int(self._vb.width()))
        if hi - lo <= 2 * px:
            xs, ys = np.arange(lo, hi, dtype=np.float64), det[lo:hi]
        else:
            edges = np.unique(np.linspace(lo, hi, px + 1).astype(np.int64))
            ys = np.maximum.reduceat(det[lo:hi], edges[:-1] - lo)
            xs = (edges[:-1] + edges[1:] - 1) / 2.0
        fill.setData(xs, ys)

    def _view_changed(self) -> None:
        """What follows the frames in view or the pixels they get: the Detection lane, the grid, the playhead."""
        self._draw_detection()
        self._draw_grid()
        self._place_playhead()

    def _draw_grid(self) -> None:
        """Vertical lines at the time axis's ticks across the lanes, fainter for the finer levels (pyqtgraph's grid
        weights: 1, 1/2, 1/3 of ``GRID_ALPHA``, less where the lines are dense)."""
        (x0, x1), (y0, y1) = self._vb.viewRange()
        px = max(1.0, float(self._vb.width()))
        levels = self.time_axis.tickValues(x0, x1, px) if x1 > x0 else []
        colour = QColor(self.time_axis.tickPen().color())
        for i, item in enumerate(self.grid):
            ticks = np.asarray(levels[i][1] if i < len(levels) else [], np.float64)
            alpha = 255 * GRID_ALPHA / (i + 1) * float(np.clip(0.05 * px / (ticks.size + 1), 0.0, 1.0))
            colour.setAlpha(int(alpha))
            if item.opts["pen"].color() != colour:
                item.setPen(pg.mkPen(colour))
            item.setData(np.repeat(ticks, 2), np.tile([y0, y1], ticks.size))

    # ---- playhead ---------------------------------------------------------------------------------------------
    def set_playhead(self, index: int, follow: bool = True) -> None:
        """Put the playhead on frame ``index`` (``follow``: scroll the view to it). The line is moved only when it
        lands on another pixel column: at the whole of a 30-minute video a column holds ~45 frames, and each move
        repaints the lanes under the line (~7 ms of the GUI thread, 30 times a second while playing). The frame
        itself is kept, and the line is put exactly on it whenever the view changes."""
        self.playhead_frame = index
        (x0, x1), _ = self._vb.viewRange()
        if follow and not x0 <= index <= x1:
            span = x1 - x0
            self._vb.setXRange(index - 0.1 * span, index + 0.9 * span, padding=0)  # puts the line on it
            return
        per_px = max(x1 - x0, 1e-9) / max(1.0, float(self._vb.width()))
        if int((index - x0) // per_px) != int((self.playhead.value() - x0) // per_px):
            self.playhead.setValue(index)

    def _place_playhead(self) -> None:
        if self.playhead.value() != self.playhead_frame:
            self.playhead.setValue(self.playhead_frame)

    def frame_at(self, pos: QPointF) -> int:
        """Frame under a point in widget coordinates (tests and tools use it)."""
        scene = self.mapToScene(pos.toPoint())
        return self._clamp(self._vb.mapSceneToView(scene).x())

    def widget_x_for(self, frame: float) -> float:
        scene = self._vb.mapViewToScene(QPointF(frame, 0))
        return self.mapFromScene(scene).x()
