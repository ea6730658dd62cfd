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
