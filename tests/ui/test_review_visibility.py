"""Issue 22 items 1-2: on an analysed frame, what the confidence slider hides can be neither hit nor reviewed.

The model stores low-scoring suggestions too; the player hides those under the slider. Drawing a box over a hidden
suggestion draws a new box, A / R act only on what is drawn, a brush stroke never starts from a hidden mask, and
bulk accept takes only visible suggestions and says how many it took and how many hidden ones it left.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from core_model.contract import rle_decode, rle_encode
from tests.ui.helpers import _in_thread, at, drag, key, labels, saved

VISIBLE_BOX = [100, 80, 160, 140]  # score 0.9
HIDDEN_BOXES = [[0, 0, 300, 220], [90, 70, 200, 180], [10, 100, 250, 235]]  # scores 0.22-0.24


@pytest.fixture
def analysed(qtbot, edit):
    """Frames 20-39 analysed: one visible box (0.9) plus three large hidden boxes and a hidden mask (< 0.5)."""
    from endoreview.services.predictions import PredictionRecorder

    ctl = edit
    big = np.zeros((240, 320), np.uint8)
    big[20:220, 20:300] = 1

    def events():
        for f in range(90):
            ev = {"event": "frame", "frame": f, "probs": {"normal": 0.9, "abnormal": 0.1}}  # no segment
            if 20 <= f < 40:
                ev["boxes"] = [{"label": "polyp", "score": 0.9, "bbox": VISIBLE_BOX}] + [
                    {"label": "polyp", "score": 0.22 + 0.01 * k, "bbox": b}
                    for k, b in enumerate(HIDDEN_BOXES)
                ]
                ev["masks"] = [{"label": "polyp", "score": 0.3, "rle": rle_encode(big)}]
            yield ev
        yield {"event": "video_done", "frames": 90, "probs": {"normal": 0.5, "abnormal": 0.5}}

    ctl.said = []
    ctl.message.connect(ctl.said.append)
    _in_thread(lambda: PredictionRecorder(ctl.parent().backend.store, ctl.video.id, None).record(events()))
    ctl.review_ctl.reload_tracks()  # what a finished analysis does
    qtbot.waitUntil(
        lambda: ctl.review_ctl.tracks is not None and ctl.review_ctl.tracks.predictions is not None,
        timeout=10000,
    )
    saved(qtbot, ctl)
    assert ctl.player_widget.threshold.value() == 50  # the default slider hides everything below 0.5
    ctl.player.seek(30)
    qtbot.waitUntil(lambda: ctl.frame == 30, timeout=5000)
    qtbot.waitUntil(lambda: len(ctl.player_widget.view.overlay.visible_boxes()) == 1, timeout=5000)
    return ctl


def _marks(qtbot, ctl, a: int, b: int) -> None:  # In at frame a, Out after frame b - 1
    for f, k in ((a, Qt.Key.Key_I), (b - 1, Qt.Key.Key_O)):
        ctl.player.seek(f)
        qtbot.waitUntil(lambda f=f: ctl.frame == f, timeout=5000)
        key(qtbot, ctl, k)


def _states(ctl, frame: int) -> dict[tuple, str]:
    return {(x.kind, tuple(x.bbox) if x.bbox else None, x.score): x.state for x in labels(ctl, frame)}


def test_a_box_drawn_over_hidden_suggestions_is_a_new_box_and_moves_none(qtbot, analysed):
    ctl = analysed
    before = _states(ctl, 30)
    key(qtbot, ctl, Qt.Key.Key_T)
    drag(ctl.player_widget.view, [at(ctl, 30, 30), at(ctl, 60, 50), at(ctl, 80, 70)])
    saved(qtbot, ctl)
    assert "Saved: Draw box" in ctl.said
    new = [x for x in labels(ctl, 30, "box") if x.state == "manual"]
    assert len(new) == 1 and np.allclose(new[0].bbox, (30, 30, 80, 70), atol=1.5)
    after = _states(ctl, 30)
    assert {k: v for k, v in after.items() if k in before} == before  # every suggestion as it was
    # the visible box is still grabbed and moved as before
    drag(ctl.player_widget.view, [at(ctl, 130, 110), at(ctl, 140, 115), at(ctl, 150, 120)])
    saved(qtbot, ctl)
    (moved,) = [x for x in labels(ctl, 30, "box") if x.state == "edited"]
    assert np.allclose(moved.bbox, (120, 90, 180, 150), atol=1.5) and moved.score == pytest.approx(0.9)
    # switching boxes off hides the suggestions: a drag on the (now hidden) box draws a new one
    ctl.player.seek(31)
    qtbot.waitUntil(lambda: ctl.frame == 31, timeout=5000)
    ctl.player_widget.chk_boxes.setChecked(False)
    drag(ctl.player_widget.view, [at(ctl, 110, 90), at(ctl, 130, 110), at(ctl, 150, 130)])
    saved(qtbot, ctl)
    assert {x.state for x in labels(ctl, 31, "box") if x.score is not None} == {"suggested"}
    assert len([x for x in labels(ctl, 31, "box") if x.state == "manual"]) == 1


def test_accept_and_reject_under_the_cursor_touch_only_what_is_drawn(qtbot, analysed):
    ctl = analysed
    view = ctl.player_widget.view
    qtbot.mouseMove(
        view.viewport(), at(ctl, 120, 100).toPoint()
    )  # inside the visible box and three hidden ones
    key(qtbot, ctl, Qt.Key.Key_A)
    saved(qtbot, ctl)
    assert "Saved: Accept 1" in ctl.said
    got = {(x.kind, round(x.score, 2)): x.state for x in labels(ctl, 30)}
    assert got[("box", 0.9)] == "accepted"
    assert sorted(s for (k, sc), s in got.items() if sc < 0.5) == ["suggested"] * 4
    ctl.player.seek(32)
    qtbot.waitUntil(lambda: ctl.frame == 32, timeout=5000)
    qtbot.mouseMove(view.viewport(), at(ctl, 120, 100).toPoint())
    key(qtbot, ctl, Qt.Key.Key_R)
    saved(qtbot, ctl)
    got = labels(ctl, 32)
    assert [x.score for x in got if x.state == "rejected"] == [pytest.approx(0.9)]
    assert sum(x.state == "suggested" for x in got) == 4
    # with nothing visible left on the frame, A says so instead of reaching for hidden ones
    key(qtbot, ctl, Qt.Key.Key_A)
    saved(qtbot, ctl)
    assert "No visible suggestion" in ctl.said[-1]
    assert sum(x.state == "suggested" for x in labels(ctl, 32)) == 4
    # lowering the slider shows them, and then they can be reviewed
    ctl.player_widget.threshold.setValue(20)
    ctl.hover = None
    key(qtbot, ctl, Qt.Key.Key_A)
    saved(qtbot, ctl)
    assert sum(x.state == "accepted" for x in labels(ctl, 32)) == 4


def test_a_brush_stroke_never_starts_from_a_hidden_mask(qtbot, analysed):
    ctl = analysed
    key(qtbot, ctl, Qt.Key.Key_W)
    drag(ctl.player_widget.view, [at(ctl, 60, 60), at(ctl, 70, 60)])
    saved(qtbot, ctl)
    masks = labels(ctl, 30, "mask")
    (mine,) = [x for x in masks if x.state == "manual"]
    m = rle_decode(mine.rle)
    assert m[60, 65] and m.sum() < 2000  # just the stroke, not the hidden 200×280 mask
    (hidden,) = [x for x in masks if x.state == "suggested"]
    assert rle_decode(hidden.rle).sum() == 200 * 280


def test_bulk_accept_takes_only_visible_suggestions_and_says_how_many(qtbot, analysed):
    ctl = analysed
    panel = ctl.toolbar
    _marks(qtbot, ctl, 20, 30)
    panel.thr.setValue(0.2)  # a low bulk threshold must not reach under the slider
    saved(qtbot, ctl)
    qtbot.waitUntil(
        lambda: "Bulk accept takes 10 suggestion(s) (40 hidden left open)" in panel.marks.text(), timeout=5000
    )
    assert (
        panel.bulk_btn.text() == "Bulk accept (⇧A)"
    )  # the count is the line below: the panel keeps its width
    key(qtbot, ctl, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    saved(qtbot, ctl)
    msg = ctl.said[-1]
    assert "Accepted 10 suggestion(s)" in msg and "40 hidden" in msg
    for f in range(20, 30):
        states = [(x.score, x.state) for x in labels(ctl, f)]
        assert [s for sc, s in states if sc == pytest.approx(0.9)] == ["accepted"]
        assert {s for sc, s in states if sc < 0.5} == {"suggested"}
    assert {x.state for x in labels(ctl, 30)} == {"suggested"}  # Out is exclusive
    # the slider above every score: bulk accept accepts nothing and says why
    ctl.player_widget.threshold.setValue(95)
    _marks(qtbot, ctl, 30, 40)
    key(qtbot, ctl, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    assert "No visible suggestion" in ctl.said[-1]
    assert {x.state for f in range(30, 40) for x in labels(ctl, f)} == {"suggested"}
