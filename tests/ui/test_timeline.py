"""The timeline: lanes from tracks, click and drag to seek (real mouse events), playhead follows."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF

from endoreview.ui.timeline import TimelineWidget, lane_extents
from endoreview.ui.tracks import LabelTrack, PredictionTrack
from tests.ui.helpers import click, drag


@pytest.fixture
def timeline(qtbot, pg_config):
    t = TimelineWidget()
    qtbot.addWidget(t)
    t.resize(900, 220)
    t.show()
    qtbot.waitExposed(t)
    t.set_video(300, 30.0)
    return t


def test_click_and_drag_seek(qtbot, timeline):
    seeks = []
    timeline.seekRequested.connect(seeks.append)
    y = timeline.height() / 2
    x100 = timeline.widget_x_for(100)
    click(timeline, (x100, y))
    assert seeks and abs(seeks[-1] - 100) <= 2
    seeks.clear()
    drag(timeline, [(timeline.widget_x_for(50), y), (timeline.widget_x_for(200), y)])
    assert len(seeks) >= 3, "a drag seeks continuously"
    assert abs(seeks[-1] - 200) <= 2 and seeks == sorted(seeks)


def test_lanes_and_playhead_follow(qtbot, timeline):
    pred = PredictionTrack(300)
    for i in range(300):
        pred.add({"frame": i, "probs": {"normal": 0.2, "polyp": 0.8 if i > 150 else 0.1}})
    labels = LabelTrack.from_labels(
        300,
        [
            {
                "kind": "segment",
                "state": "rejected",
                "class_name": "polyp",
                "start_frame": 160,
                "end_frame": 200,
                "id": 1,
            }
        ],
    )
    timeline.set_tracks(pred, labels)
    assert timeline.disagree_frames.tolist() == [160]
    assert set(lane_extents()) == {"Class probability", "Detection", "Labels", "Reviewed", "Disagree"}
    assert len(timeline._items) >= 5
    timeline._vb.setXRange(0, 50, padding=0)
    timeline.set_playhead(250)
    (x0, x1), _ = timeline._vb.viewRange()
    assert x0 <= 250 <= x1 and timeline.playhead.value() == 250
    assert timeline.frame_at(QPointF(timeline.widget_x_for(260), 50)) == 260


def test_the_lanes_curves_are_drawn_without_antialiasing(qtbot, timeline):
    """Issue 21 item 3: with the app's global antialiasing (ui/app.py) each lane's curve cost ~16 ms a repaint at
    1366 px, and zooming a 30-minute run in the app kept up ~5 steps a second. The curves are one min/max pair per
    pixel (vertical strokes): they are drawn aliased, the frame overlays keep antialiasing."""
    import numpy as np
    import pyqtgraph as pg

    was = pg.getConfigOption("antialias")
    pg.setConfigOptions(antialias=True)
    try:
        pred = PredictionTrack(300, classes=["normal", "polyp"])
        pred.probs = np.tile(np.array([[0.3, 0.7]], np.float32), (300, 1))
        pred.det_score = np.full(300, 0.6, np.float32)
        timeline.set_tracks(pred, None)
    finally:
        pg.setConfigOptions(antialias=was)
    curves = [it for it in timeline._items if isinstance(it, pg.PlotDataItem)]
    assert len(curves) == 3  # two classes and the detection lane
    painter_hints = []
    for it in curves:
        img = pg.QtGui.QImage(10, 10, pg.QtGui.QImage.Format.Format_ARGB32)
        p = pg.QtGui.QPainter(img)
        it.curve.paint(p, None, None)
        painter_hints.append(bool(p.renderHints() & pg.QtGui.QPainter.RenderHint.Antialiasing))
        p.end()
    assert painter_hints == [False, False, False]


def test_a_one_frame_detection_shows_at_full_view_and_when_zoomed(qtbot, timeline):
    """The Detection lane of a 30-minute run is drawn one point per pixel (the highest score of the pixel's
    frames): a single frame's detection must still reach its height at full view, and zooming shows the frames."""
    import numpy as np

    n = 54_000
    timeline.set_video(n, 30.0)
    pred = PredictionTrack(n, classes=["polyp"])
    pred.probs = np.zeros((n, 1), np.float32)
    pred.det_score = np.zeros(n, np.float32)
    pred.det_score[30_123] = 0.9
    timeline.set_tracks(pred, None)
    a, b = lane_extents()["Detection"]
    lane = next(it for it in timeline._items if it is timeline._lanes["detection"])
    xs, ys = lane.getData()
    assert xs.size <= 2 * timeline._vb.width() + 2  # per pixel, not per frame
    top = int(np.argmax(ys))
    assert ys[top] == pytest.approx(a + 0.9 * (b - a)) and abs(xs[top] - 30_123) < n / timeline._vb.width()
    timeline._vb.setXRange(30_100, 30_150, padding=0)
    xs, ys = lane.getData()
    assert 30_123 in xs.astype(int).tolist() and ys[xs.astype(int).tolist().index(30_123)] > a
    assert ys[xs.astype(int).tolist().index(30_122)] == pytest.approx(a)  # its neighbours had none


def test_the_legend_names_what_is_drawn_in_its_own_row_and_clicks_pass_through(qtbot, timeline):
    """The legend is one label over the plot (pyqtgraph's legend item cost ~12 ms to rebuild whenever a video with
    other classes opened): it lists the classes and review states drawn, sits bottom right under the lanes, and a
    click on it still seeks."""
    pred = PredictionTrack(300, classes=["normal", "polyp"])
    for i in range(300):
        pred.add({"frame": i, "probs": {"normal": 0.2, "polyp": 0.8}})
    labels = LabelTrack.from_labels(
        300,
        [{"kind": "segment", "state": "accepted", "class_name": "polyp", "start_frame": 10, "end_frame": 90}],
    )
    timeline.set_tracks(pred, labels)
    qtbot.wait(50)
    legend = timeline.legend
    assert legend.isVisible()
    assert [w for w in ("normal", "polyp", "accepted") if w in legend.text()] == [
        "normal",
        "polyp",
        "accepted",
    ]
    assert "rejected" not in legend.text()  # only what is drawn
    box = legend.geometry()
    assert timeline.rect().contains(box) and box.right() > timeline.width() * 0.6
    (a, b) = lane_extents()["Disagree"]
    assert (
        box.top() > timeline.mapFromScene(timeline._vb.mapViewToScene(QPointF(0, a))).y()
    )  # under the lanes
    seeks = []
    timeline.seekRequested.connect(seeks.append)
    click(timeline, (box.center().x(), box.center().y()))
    assert seeks  # the click went through to the timeline
    timeline.set_tracks(None, None)
    assert not legend.isVisible()


def test_an_opening_video_is_not_said_to_have_no_model_output_before_its_tracks_are_read(qtbot, timeline):
    timeline.set_video(54_000, 30.0)
    assert timeline.empty_text.toPlainText() == ""  # its tracks are being read
    timeline.set_tracks(None, None)
    assert "No model output" in timeline.empty_text.toPlainText()
    pred = PredictionTrack(300, classes=["polyp"])
    pred.add({"frame": 3, "probs": {"polyp": 0.9}})
    timeline.set_video(300, 30.0)
    timeline.set_tracks(pred, None)
    assert timeline.empty_text.toPlainText() == ""


def test_the_playhead_moves_by_pixel_columns_and_lands_on_its_frame_when_the_view_changes(qtbot, timeline):
    """Issue 21 item 3: at the whole of a 30-minute video a pixel column holds ~45 frames; moving the line within
    its column repainted the lanes under it for nothing, 30 times a second while playing. The line moves when its
    column changes, is never more than a column from the frame, and sits exactly on it after a zoom."""
    t = timeline
    t.set_video(54_000, 30.0)
    moves = []
    t.playhead.sigPositionChanged.connect(lambda line: moves.append(line.value()))
    (x0, x1), _ = t._vb.viewRange()
    per_px = (x1 - x0) / t._vb.width()
    assert per_px > 40
    for f in range(1000, 1900):  # 30 s of playback, one frame at a time
        t.set_playhead(f)
        assert abs(t.playhead.value() - f) < per_px and t.playhead_frame == f
    assert 10 <= len(moves) <= 900 / per_px + 2, len(moves)
    t._vb.setXRange(1850, 1950, padding=0)  # zoomed in: one frame is ~9 px
    assert t.playhead.value() == 1899
    t.set_playhead(1900)
    assert t.playhead.value() == 1900


def test_the_time_grid_follows_the_axis_ticks(qtbot, timeline):
    """The faint vertical time grid (drawn by lane items, not by the axis, so the playhead does not repaint the
    axis) has a line at every major tick of the time axis, across the lanes, and follows zooming."""
    import numpy as np

    def major_lines():
        xs, _ = timeline.grid[0].getData()
        return np.unique(np.asarray(xs))

    (x0, x1), _ = timeline._vb.viewRange()
    ticks = timeline.time_axis.tickValues(x0, x1, timeline._vb.width())
    assert major_lines().tolist() == sorted(ticks[0][1]) and major_lines().size >= 2
    timeline._vb.setXRange(100, 130, padding=0)
    (x0, x1), (y0, y1) = timeline._vb.viewRange()
    lines = major_lines()
    assert lines.size and lines.min() >= 100 - 30 and lines.max() <= 130 + 30
    _, ys = timeline.grid[0].getData()
    assert ys.min() == y0 and ys.max() == y1
    assert not timeline.getPlotItem().getAxis("bottom").grid, "the axis itself draws no grid"
