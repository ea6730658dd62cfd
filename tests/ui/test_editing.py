"""The correction tools driven with real mouse and key events on the canvas; what the store holds afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PySide6.QtCore import QPointF, Qt

from core_model.contract import rle_decode
from endoreview.services.review_commands import Command
from endoreview.store.records import Label
from tests.ui.helpers import _in_thread, at, click, drag, draw_one, key, labels, saved


def test_brush_eraser_undo_redo(qtbot, edit):
    ctl = edit
    view = ctl.player_widget.view
    key(qtbot, ctl, Qt.Key.Key_W)
    assert ctl.tools.tool == "brush"
    r0 = ctl.brush_radius
    key(qtbot, ctl, Qt.Key.Key_BracketRight)
    assert ctl.brush_radius > r0
    drag(view, [at(ctl, 100, 120), at(ctl, 160, 120), at(ctl, 160, 160)])
    saved(qtbot, ctl)
    (m,) = labels(ctl, 0, "mask")
    mask = rle_decode(m.rle)
    assert (m.state, m.origin) == ("manual", "drawn")
    assert mask[120, 100] and mask[120, 130] and mask[160, 160] and not mask[200, 40]
    key(qtbot, ctl, Qt.Key.Key_X)
    drag(view, [at(ctl, 125, 120), at(ctl, 135, 120)])
    saved(qtbot, ctl)
    (m2,) = labels(ctl, 0, "mask")
    assert not rle_decode(m2.rle)[120, 130] and rle_decode(m2.rle)[120, 100]
    key(qtbot, ctl, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    saved(qtbot, ctl)
    assert rle_decode(labels(ctl, 0, "mask")[0].rle)[120, 130]  # the erase is undone, the stroke stays
    key(qtbot, ctl, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    saved(qtbot, ctl)
    assert labels(ctl, 0, "mask") == []
    key(qtbot, ctl, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    saved(qtbot, ctl)
    assert rle_decode(labels(ctl, 0, "mask")[0].rle)[120, 130]
    summaries = [c.summary for c in _in_thread(ctl.parent().backend.store.changes_since, 0)]
    assert (
        "Undo: Erase" in summaries and "Undo: Brush stroke" in summaries and "Redo: Brush stroke" in summaries
    )


def test_polygon_fill_holes_grow_copy_and_propagation_stops_at_keyframes(qtbot, edit):
    ctl = edit
    view = ctl.player_widget.view
    key(qtbot, ctl, Qt.Key.Key_P)
    square = [(60, 60), (140, 60), (140, 140), (60, 140)]
    for x, y in square:
        click(view, at(ctl, x, y))
    click(view, at(ctl, 60, 60))  # clicking the first point closes it
    saved(qtbot, ctl)
    mask = rle_decode(labels(ctl, 0, "mask")[0].rle)
    assert mask[100, 100] and mask[65, 135] and not mask[150, 100]
    key(qtbot, ctl, Qt.Key.Key_X)  # punch a hole, then fill it with H
    drag(view, [at(ctl, 100, 100), at(ctl, 101, 100)])
    saved(qtbot, ctl)
    assert not rle_decode(labels(ctl, 0, "mask")[0].rle)[100, 100]
    key(qtbot, ctl, Qt.Key.Key_H)
    saved(qtbot, ctl)
    assert rle_decode(labels(ctl, 0, "mask")[0].rle)[100, 100]
    key(qtbot, ctl, Qt.Key.Key_G)
    saved(qtbot, ctl)
    assert rle_decode(labels(ctl, 0, "mask")[0].rle)[100, 141]  # grown by 2 px
    # a keyframe on frame 5, then propagate forward from frame 0: frames 1-4 filled, frame 5 untouched
    ctl.player.seek(5)
    qtbot.waitUntil(lambda: ctl.frame == 5, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_C)  # copy from frame 4: nothing there yet
    key(qtbot, ctl, Qt.Key.Key_W)
    drag(view, [at(ctl, 250, 200), at(ctl, 270, 200)])
    saved(qtbot, ctl)
    keyframe = labels(ctl, 5, "mask")[0]
    ctl.player.seek(0)
    qtbot.waitUntil(lambda: ctl.frame == 0, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    saved(qtbot, ctl)
    for f in range(1, 5):
        (lab,) = labels(ctl, f, "mask")
        assert lab.origin == "propagated" and rle_decode(lab.rle)[100, 100]
    assert [(x.id, x.version) for x in labels(ctl, 5, "mask")] == [(keyframe.id, keyframe.version)]
    marks = ctl.timeline_items.markers["propagated"].getData()[0]
    assert sorted(marks.tolist()) == [1, 2, 3, 4]
    # copying the previous frame's mask onto frame 6
    ctl.player.seek(6)
    qtbot.waitUntil(lambda: ctl.frame == 6, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_C)
    saved(qtbot, ctl)
    assert np.array_equal(rle_decode(labels(ctl, 6, "mask")[0].rle), rle_decode(keyframe.rle))


def test_boxes_draw_move_resize_class_delete_and_interpolate(qtbot, edit):
    ctl = edit
    view = ctl.player_widget.view
    b = draw_one(qtbot, ctl, Qt.Key.Key_T, [(50, 60), (110, 130)], "box")
    assert np.allclose(b.bbox, (50, 60, 110, 130), atol=1.5) and b.state == "manual"
    drag(view, [at(ctl, 80, 90), at(ctl, 100, 100)])  # move from inside
    saved(qtbot, ctl)
    (b,) = labels(ctl, 0, "box")
    assert np.allclose(b.bbox, (70, 70, 130, 140), atol=1.5)
    drag(view, [at(ctl, 130, 140), at(ctl, 150, 150)])  # resize from the bottom-right corner
    saved(qtbot, ctl)
    (b,) = labels(ctl, 0, "box")
    assert np.allclose(b.bbox, (70, 70, 150, 150), atol=1.5)
    ctl.player.seek(10)
    qtbot.waitUntil(lambda: ctl.frame == 10, timeout=5000)
    ctl.session.select_box(None)
    drag(view, [at(ctl, 170, 70), at(ctl, 250, 150)])  # a keyframe of the same track on frame 10
    saved(qtbot, ctl)
    assert labels(ctl, 10, "box")[0].track_id == b.track_id
    ctl.player.seek(0)
    qtbot.waitUntil(lambda: ctl.frame == 0, timeout=5000)
    click(view, at(ctl, 100, 100))  # select the first box
    assert ctl.session.selected_box is not None
    key(qtbot, ctl, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)
    saved(qtbot, ctl)
    (mid,) = labels(ctl, 5, "box")
    assert mid.origin == "interpolated" and np.allclose(mid.bbox, (120, 70, 200, 150), atol=1.5)
    key(qtbot, ctl, Qt.Key.Key_Delete)
    saved(qtbot, ctl)
    assert labels(ctl, 0, "box") == []
    key(qtbot, ctl, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    saved(qtbot, ctl)
    assert len(labels(ctl, 0, "box")) == 1


def _predict(ctl, polyp=range(45, 90)) -> None:
    """Model output: frames in ``polyp`` abnormal, a box x 100..160 y 80..140 around a mask x 110..150 y 90..130."""
    from core_model.contract import rle_encode
    from endoreview.services.predictions import PredictionRecorder

    m = np.zeros((240, 320), np.uint8)
    m[90:130, 110:150] = 1
    rle = rle_encode(m)

    def events():
        for f in range(90):
            p = 0.95 if f in polyp else (0.55 if f in (40, 41, 42) else 0.05)
            ev = {"event": "frame", "frame": f, "probs": {"normal": 1 - p, "abnormal": p}}
            if f in polyp:
                ev["masks"] = [{"label": "polyp", "score": p, "rle": rle}]
                ev["boxes"] = [
                    {"label": "polyp", "score": 0.9 if f < 70 else 0.6, "bbox": [100, 80, 160, 140]}
                ]
            yield ev
        yield {"event": "video_done", "frames": 90, "probs": {"normal": 0.2, "abnormal": 0.8}}

    store = ctl.parent().backend.store
    _in_thread(lambda: PredictionRecorder(store, ctl.video.id, None).record(events()))
    ctl.session.reload()


def test_segments_with_in_out_class_keys_timeline_drag_split_merge_delete(qtbot, edit):
    ctl = edit
    tl = ctl.timeline

    def segs():
        out = _in_thread(ctl.parent().backend.store.labels_for_video, ctl.video.id, kinds=["segment"])
        return sorted((x.start_frame, x.end_frame, x.state) for x in out)

    ctl.player.seek(10)
    qtbot.waitUntil(lambda: ctl.frame == 10, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_I)
    ctl.player.seek(29)
    qtbot.waitUntil(lambda: ctl.frame == 29, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_O)
    key(qtbot, ctl, Qt.Key.Key_1)
    saved(qtbot, ctl)
    assert segs() == [(10, 30, "manual")]
    key(qtbot, ctl, Qt.Key.Key_2)
    assert "No class 2" in ctl.parent().statusBar().currentMessage()
    # drag the segment's start edge on the timeline from frame 10 to about frame 4
    qtbot.waitUntil(lambda: len(ctl.timeline_items.regions) == 1, timeout=5000)
    a, b = __import__("endoreview.ui.timeline", fromlist=["lane_extents"]).lane_extents()["Labels"]
    y = tl.mapFromScene(tl.getPlotItem().getViewBox().mapViewToScene(QPointF(10, (a + b) / 2))).y()
    drag(tl, [QPointF(tl.widget_x_for(10), y), QPointF(tl.widget_x_for(4), y)], steps_between=6)
    saved(qtbot, ctl)
    ((start, end, _),) = segs()
    assert end == 30 and 2 <= start <= 6
    ctl.player.seek(20)
    qtbot.waitUntil(lambda: ctl.frame == 20, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_S)
    saved(qtbot, ctl)
    assert [(s, e) for s, e, _ in segs()] == [(start, 20), (20, 30)]
    ctl.player.seek(5)
    qtbot.waitUntil(lambda: ctl.frame == 5, timeout=5000)
    key(qtbot, ctl, Qt.Key.Key_S, Qt.KeyboardModifier.ShiftModifier)
    saved(qtbot, ctl)
    assert [(s, e) for s, e, _ in segs()] == [(start, 30)]
    key(qtbot, ctl, Qt.Key.Key_Delete)
    saved(qtbot, ctl)
    assert segs() == []
    key(qtbot, ctl, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    saved(qtbot, ctl)
    assert [(s, e) for s, e, _ in segs()] == [(start, 30)]


def test_accept_reject_edit_bulk_accept_blind_pass_and_queue(qtbot, edit):
    ctl = edit
    view = ctl.player_widget.view
    _predict(ctl)
    saved(qtbot, ctl)
    ctl.player.seek(50)
    qtbot.waitUntil(lambda: ctl.frame == 50, timeout=5000)
    qtbot.waitUntil(lambda: len(ctl.player_widget.view.overlay.boxes) == 1, timeout=5000)
    # A on the box under the mouse accepts just the box (a predicted box promoted with one key)
    qtbot.mouseMove(view.viewport(), at(ctl, 105, 85).toPoint())
    key(qtbot, ctl, Qt.Key.Key_A)
    saved(qtbot, ctl)
    states = {x.kind: x.state for x in labels(ctl, 50)}
    assert states == {"box": "accepted", "mask": "suggested"}
    assert ctl.player_widget.view.overlay.boxes == []  # no longer drawn as an open suggestion
    ctl.hover = None
    key(qtbot, ctl, Qt.Key.Key_R)  # R on the frame: the remaining suggestion (the mask)
    saved(qtbot, ctl)
    assert {x.kind: x.state for x in labels(ctl, 50)} == {"box": "accepted", "mask": "rejected"}
    ctl.player.seek(51)
    qtbot.waitUntil(lambda: ctl.frame == 51, timeout=5000)
    ctl.reject("wrong class")  # what Shift+R's menu calls
    saved(qtbot, ctl)
    assert {x.reason for x in labels(ctl, 51)} == {"wrong class"}
    ctl.player.seek(52)
    qtbot.waitUntil(lambda: ctl.frame == 52, timeout=5000)
    qtbot.mouseMove(view.viewport(), at(ctl, 130, 110).toPoint())
    key(qtbot, ctl, Qt.Key.Key_E)  # edit: the brush now changes the model's mask
    assert ctl.tools.tool in ("brush", "box")
    key(qtbot, ctl, Qt.Key.Key_W)
    drag(view, [at(ctl, 170, 110), at(ctl, 190, 110)])
    saved(qtbot, ctl)
    (m,) = labels(ctl, 52, "mask")
    assert (m.state, m.origin) == ("edited", "predicted") and rle_decode(m.rle)[110, 185]
    # bulk accept In..Out above 0.8: boxes of frames 60-69 (0.9) and masks (0.95); boxes from 70 on (0.6) stay
    ctl.session.set_marks(60, 80)
    key(qtbot, ctl, Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier)
    saved(qtbot, ctl)
    assert {x.state for x in labels(ctl, 65)} == {"accepted"}
    assert {x.kind: x.state for x in labels(ctl, 75)} == {"box": "suggested", "mask": "accepted"}
    # blind first pass: nothing of the model is shown, A refuses; revealing compares
    ctl.toolbar.blind.setChecked(True)
    assert ctl.player_widget.view.overlay.boxes == [] and ctl.timeline.pred is None
    key(qtbot, ctl, Qt.Key.Key_A)
    assert "Blind pass" in ctl.parent().statusBar().currentMessage()
    ctl.toolbar.blind.setChecked(False)
    assert "agree on" in ctl.parent().statusBar().currentMessage()
    qtbot.waitUntil(lambda: ctl.player_widget.view.overlay.boxes != [], timeout=5000)
    # review status per video, shown in the library
    ctl.toolbar.status.setCurrentIndex(2)
    ctl.toolbar.status.activated.emit(2)
    saved(qtbot, ctl)
    assert _in_thread(ctl.parent().backend.store.get_video, ctl.video.id).review_status == "reviewed"
    ctl.set_review_status("in_review")
    saved(qtbot, ctl)
    # the review queue goes to the uncertain frames 40-42
    key(qtbot, ctl, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: ctl.frame == 40, timeout=10000)
    assert (ctl.session.mark_in, ctl.session.mark_out) == (40, 43)


def test_every_shortcut_key_is_bound_once_and_listed_in_help(qtbot, main_window):
    from PySide6.QtGui import QKeySequence

    from endoreview.ui.editing import EDIT_SHORTCUTS
    from endoreview.ui.shortcuts import ShortcutHelpDialog, all_shortcuts

    keys = [QKeySequence(k).toString() for s in all_shortcuts() for k in s.keys]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    dlg = ShortcutHelpDialog(main_window)
    qtbot.addWidget(dlg)
    listed = {dlg.table.item(r, 1).text() for r in range(dlg.table.rowCount())}
    assert {s.description for s in EDIT_SHORTCUTS} <= listed


@dataclass(frozen=True)
class StaleStroke(Command):
    """A stroke saved against the version of the mask the screen showed."""

    name: ClassVar[str] = "Brush stroke"
    label: Label

    @property
    def frames(self) -> list[int]:
        return [self.label.frame or 0]

    def run(self, svc):
        return svc.store.edit_label(self.label.id, self.label.version, rle=self.label.rle)


def test_an_edit_refused_as_stale_is_reported_and_the_stored_mask_shown(qtbot, edit):
    from core_model.contract import rle_encode
    from endoreview.services.editing import grow_shrink
    from endoreview.store import Store

    ctl = edit
    mine = draw_one(qtbot, ctl, Qt.Key.Key_W, [(100, 120), (140, 120)], "mask")
    other = _in_thread(Store.open, ctl.parent().backend.db_url, reviewer="colleague")
    try:  # a colleague on another workstation changes the same mask; our cached copy is now stale
        theirs = grow_shrink(rle_decode(mine.rle), 6)

        _in_thread(other.edit_label, mine.id, mine.version, rle=rle_encode(theirs))
    finally:
        _in_thread(other.close)
    ctl.session.working[0] = rle_decode(mine.rle)  # what the screen showed before the colleague's change
    said: list[str] = []  # the status line's messages (a later one, e.g. the proxy being ready, replaces it)
    ctl.message.connect(said.append)
    ctl.session.execute(StaleStroke(mine))  # our next stroke, based on the version we last saw
    qtbot.waitUntil(lambda: any("was not saved" in m for m in said), timeout=10000)
    assert any("was not saved" in m and "colleague" in m for m in said)
    saved(qtbot, ctl)
    assert ctl.session.working == {} and np.array_equal(ctl.editable_mask(0), theirs)


def test_the_label_layer_draws_saved_masks_in_place_and_decodes_them_once(qtbot, monkeypatch):
    """The reviewer's masks are filled where they are (the layer composes only the box around them) and the same
    saved masks are not decoded again when the frame is redrawn (after every action and presented frame)."""
    from PySide6.QtGui import QImage, QPainter

    from core_model.contract import rle_encode
    from endoreview.ui.editing import layer as L

    m = np.zeros((480, 640), np.uint8)
    m[100:150, 200:260] = 1
    rle = rle_encode(m)
    decoded = []
    monkeypatch.setattr(L, "rle_decode", lambda r: decoded.append(1) or rle_decode(r))
    lay = L.LabelLayer()
    lay.set_frame_rect(640, 480)

    def render() -> QImage:
        img = QImage(640, 480, QImage.Format.Format_ARGB32)
        img.fill(0)
        p = QPainter(img)
        lay.paint(p)
        p.end()
        return img

    lay.set_masks([L.DrawnMask.saved(rle, (255, 0, 0))])
    img = render()
    inside, outside = img.pixelColor(230, 125), img.pixelColor(100, 300)
    assert inside.red() > 200 and inside.green() < 60 and inside.alpha() > 0
    assert outside.alpha() == 0
    assert img.pixelColor(199, 125).alpha() > 0  # the outline around it
    for _ in range(3):  # the same frame redrawn
        lay.set_masks([L.DrawnMask.saved(rle, (255, 0, 0))])
    assert len(decoded) == 1
    lay.set_masks([L.DrawnMask.saved(rle, (0, 255, 0))])  # another class colour: drawn again
    assert len(decoded) == 2 and render().pixelColor(230, 125).green() > 200


def test_the_tools_act_on_the_frame_on_screen_until_the_next_is_decoded(qtbot, edit, indexed_video):
    """While a new frame is being decoded the last one stays on screen, and so do its masks and what A / R / the
    brush act on: scrubbing drew the next frame's model masks over the previous image."""
    import threading
    from dataclasses import replace

    from core_model.video import VideoReader

    ctl = edit
    win = ctl.parent()
    gate = threading.Event()

    class SlowReader:  # frame 40 takes until the test lets it through
        def __init__(self) -> None:
            self.r = VideoReader(indexed_video)

        def __len__(self) -> int:
            return len(self.r)

        def __getitem__(self, i: int):
            if i == 40:
                gate.wait(10)
            return self.r[i]

        def close(self) -> None:
            self.r.close()

    win.player.open(
        replace(win.player.source, key="slow", open_original=SlowReader, open_proxy=None), start=10
    )
    qtbot.waitUntil(lambda: win.player.shown == (10, True), timeout=10000)
    win.player.seek(40)
    assert win.player.current == 40 and win.player.shown[0] == 10
    assert ctl.frame == 10
    gate.set()
    qtbot.waitUntil(lambda: win.player.shown is not None and win.player.shown[0] == 40, timeout=10000)
    assert ctl.frame == 40
