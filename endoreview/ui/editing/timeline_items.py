"""The correction tools on the timeline: draggable segment edges, In/Out marks, and label origins.

Added to the existing :class:`~endoreview.ui.timeline.TimelineWidget` as extra items (its own redraw leaves them
alone). Each segment is a region in the Labels lane whose edges drag (saved on release, one undo step). Above it,
ticks show where the reviewer's masks and boxes came from: keyframes (white), propagated (cyan), interpolated
(violet) — so machine-carried labels are never mistaken for hand-made ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg

from endoreview.services.editing import DERIVED_ORIGINS, HUMAN_STATES
from endoreview.services.records import LabelKind, LabelOrigin, ReviewState
from endoreview.ui.palette import STATE_COLOURS
from endoreview.ui.timeline import lane_extents

if TYPE_CHECKING:
    from endoreview.ui.editing.controller import EditController

ORIGIN_COLOURS = {"keyframe": "#ffffff", "propagated": "#00e5ff", "interpolated": "#d59cff"}


class TimelineEditing:
    def __init__(self, ctl: EditController) -> None:
        self.ctl = ctl
        self.tl = ctl.timeline
        self.regions: dict[int, pg.LinearRegionItem] = {}
        self.markers: dict[str, pg.ScatterPlotItem] = {}
        self._ticks: dict[str, np.ndarray] = {}  # the frames each origin's ticks are drawn at
        self.mark_in = pg.InfiniteLine(
            0, angle=90, movable=False, pen=pg.mkPen("#76ff03", width=2, dash=[4, 3])
        )
        self.mark_out = pg.InfiniteLine(
            0, angle=90, movable=False, pen=pg.mkPen("#ff9100", width=2, dash=[4, 3])
        )
        for line, text in ((self.mark_in, "In"), (self.mark_out, "Out")):
            line.setZValue(45)
            line.setVisible(False)
            pg.InfLineLabel(line, text, position=0.95, color="#eee")
            self.tl.addItem(line)
        for origin, col in ORIGIN_COLOURS.items():
            sp = pg.ScatterPlotItem(symbol="s", size=5, brush=pg.mkBrush(col), pen=pg.mkPen(None))
            sp.setZValue(30)
            self.tl.addItem(sp)
            self.markers[origin] = sp
        ctl.labelsChanged.connect(self.redraw)
        ctl.stateChanged.connect(self.update_marks)

    def _span(self) -> tuple[float, float]:
        a, b = lane_extents()["Labels"]
        y0, y1 = self.tl.getPlotItem().getViewBox().viewRange()[1]
        h = max(1e-6, y1 - y0)
        return (a - y0) / h, (b - y0) / h

    def update_marks(self) -> None:
        for line, v in ((self.mark_in, self.ctl.session.mark_in), (self.mark_out, self.ctl.session.mark_out)):
            line.setVisible(v is not None)
            if v is not None:
                line.setValue(v)

    @staticmethod
    def _dragging(region: pg.LinearRegionItem) -> bool:
        return bool(
            getattr(region, "moving", False) or any(getattr(ln, "moving", False) for ln in region.lines)
        )

    def redraw(self) -> None:
        """Update the segment regions in place (one being dragged is left alone until it is released)."""
        span = self._span()
        live = {
            s.id: s
            for s in self.ctl.session.segments
            if s.kind == LabelKind.SEGMENT and s.state != ReviewState.REJECTED
        }
        for sid in list(self.regions):
            if sid not in live and not self._dragging(self.regions[sid]):
                self.tl.removeItem(self.regions.pop(sid))
        for sid, s in live.items():
            col = STATE_COLOURS.get(str(s.state), (200, 200, 200))
            region = self.regions.get(sid)
            if region is None:
                region = pg.LinearRegionItem(
                    (s.start_frame, s.end_frame), movable=True, span=span, brush=pg.mkBrush(*col, 60),
                    hoverBrush=pg.mkBrush(*col, 110), pen=pg.mkPen(*col, width=3),
                    hoverPen=pg.mkPen("#ffffff", width=4),
                )  # fmt: skip
                region.setZValue(25)
                region.sigRegionChangeFinished.connect(lambda r, sid=sid: self._moved(sid, r))
                self.tl.addItem(region)
                self.regions[sid] = region
            elif not self._dragging(region):
                region.blockSignals(True)
                region.setRegion((s.start_frame, s.end_frame))
                region.blockSignals(False)
            region.setToolTip(f"{self.ctl.session.details(s)} — drag an edge to move it")
        a, b = lane_extents()["Labels"]
        frames: dict[str, list[int]] = {k: [] for k in ORIGIN_COLOURS}
        for f, labs in self.ctl.session.frames.items():
            for x in labs:
                if x.kind not in (LabelKind.MASK, LabelKind.BOX):
                    continue
                if x.origin == LabelOrigin.PROPAGATED:
                    frames["propagated"].append(f)
                elif x.origin == LabelOrigin.INTERPOLATED:
                    frames["interpolated"].append(f)
                elif x.state in HUMAN_STATES and x.origin not in DERIVED_ORIGINS:
                    frames["keyframe"].append(f)
        for origin, sp in self.markers.items():
            xs = np.unique(np.asarray(frames[origin], np.float64))
            # labels change with every suggestion window read while the reviewer plays or scrubs, the ticks
            # rarely: rebuilding a scatter item's points for nothing was ~20-35 ms of the GUI thread each time
            if not np.array_equal(xs, self._ticks.get(origin)):
                self._ticks[origin] = xs
                sp.setData(xs, np.full(xs.size, b + 0.04))
        self.update_marks()

    def _moved(self, label_id: int, region: pg.LinearRegionItem) -> None:
        lo, hi = region.getRegion()
        n = max(1, self.ctl.session.frame_count)
        a, b = int(round(max(0, lo))), int(round(min(n, hi)))
        seg = next((x for x in self.ctl.session.segments if x.id == label_id), None)
        if seg is None or (a, b) == (seg.start_frame, seg.end_frame):
            return
        if b - a < 1:
            region.setRegion((seg.start_frame, seg.end_frame))
            return
        self.ctl.session.move_segment_edges(label_id, a, b)
