"""Issue 22 item 3: the review queue (N) opening another video says so where the reviewer is looking."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tests.ui.helpers import _in_thread, key, make_indexed_video, saved


def test_the_queue_switching_video_is_announced_on_the_player(qtbot, edit, tmp_path):
    from endoreview.services.predictions import PredictionRecorder

    ctl = edit
    be = ctl.parent().backend
    other_path = make_indexed_video(tmp_path / "second_procedure.mp4", n=60)
    other, _ = _in_thread(be.library.import_video, be.project.id, str(other_path))

    def events():  # frames 20-24 uncertain: the only item of the queue
        for f in range(60):
            p = 0.55 if 20 <= f < 25 else 0.02
            yield {"event": "frame", "frame": f, "probs": {"normal": 1 - p, "abnormal": p}}
        yield {"event": "video_done", "frames": 60, "probs": {"normal": 0.9, "abnormal": 0.1}}

    _in_thread(lambda: PredictionRecorder(be.store, other.id, None).record(events()))
    pw = ctl.player_widget
    assert pw.video_name.text() == "indexed.mp4" and not pw.switched.isVisible()
    said: list[str] = []
    ctl.message.connect(said.append)
    key(qtbot, ctl, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: ctl.video_id == other.id and ctl.frame == 20, timeout=15000)
    saved(qtbot, ctl)
    assert pw.video_name.text() == "second_procedure.mp4"
    assert pw.switched.isVisible()
    assert "Switched to second_procedure.mp4 (from indexed.mp4)" in pw.switched.text()
    assert any("Switched to second_procedure.mp4" in m for m in said)
    # opening a video by hand is the reviewer's own choice: the notice goes
    ctl.parent().open_video(ctl.video.id)
    qtbot.waitUntil(lambda: ctl.video_id == ctl.video.id and ctl.loaded, timeout=15000)
    assert pw.video_name.text() == "indexed.mp4" and not pw.switched.isVisible()


def test_the_video_class_set_is_shown_again_when_the_video_is_reopened(qtbot, edit, tmp_path):
    """Issue 22.8: the video-class dropdown forgot the class after reopening."""
    ctl = edit
    be = ctl.parent().backend
    bar = ctl.toolbar
    k = bar.vclass.findText("abnormal")
    bar.vclass.setCurrentIndex(k)
    bar.vclass.activated.emit(k)
    saved(qtbot, ctl)
    other, _ = _in_thread(
        be.library.import_video, be.project.id, str(make_indexed_video(tmp_path / "o.mp4", n=30))
    )
    ctl.parent().open_video(other.id)
    qtbot.waitUntil(lambda: ctl.video_id == other.id and ctl.loaded, timeout=15000)
    saved(qtbot, ctl)
    assert bar.vclass.currentIndex() == 0  # nothing set on this one
    ctl.parent().open_video(ctl.video.id)
    qtbot.waitUntil(lambda: ctl.video_id == ctl.video.id and ctl.loaded, timeout=15000)
    saved(qtbot, ctl)
    assert bar.vclass.currentText() == "abnormal"


def test_an_imported_label_says_where_it_came_from(qtbot, edit, tmp_path):
    """Issue 22.12: an imported label's details name its source file and line (timeline tooltip, panel)."""
    from endoreview.interchange.importer import IMPORTER_VERSION, Importer

    ctl = edit
    csv = tmp_path / "expert_segments.csv"
    csv.write_text("video,start_frame,end_frame,label\nindexed,10,20,polyp\n")
    rep = _in_thread(
        lambda: Importer(
            ctl.parent().backend.services.store, ctl.parent().backend.project.id
        ).import_annotations(csv, video_id=ctl.video.id)
    )
    assert rep.labels_added == 1, rep
    ctl.session.reload()
    saved(qtbot, ctl)
    (seg,) = [x for x in ctl.session.segments if x.kind == "segment"]
    text = ctl.session.details(seg)
    where = f"imported from {csv}:2 (segment-csv, {IMPORTER_VERSION})"  # file, line, format, importer version
    assert "origin imported" in text and where in text
    qtbot.waitUntil(lambda: seg.id in ctl.timeline_items.regions, timeout=5000)
    assert where in ctl.timeline_items.regions[seg.id].toolTip()


def test_a_long_whole_video_call_never_widens_the_player(qtbot, edit):
    """At 1366x768 the explained call ("normal: no polyp above 0.70 (highest 0.56) (suggested) · unlike the model's
    training data") pushed the jobs panel and the research notice off-screen: the banner is cut at the header's edge
    and its tooltip has it whole."""
    pw = edit.player_widget
    before = pw.minimumSizeHint().width()
    call = "whole video: normal: no polyp above 0.70 (highest 0.56) (suggested) · unlike the model's training data "
    pw.banner.setText(call * 4)
    pw.layout().activate()
    assert pw.minimumSizeHint().width() <= before
    pw.video_label = call * 4
    pw.refresh_overlay()
    if pw.banner.text():  # the banner shows the call on an analysed frame: the tooltip carries it whole
        assert pw.banner.toolTip() == pw.banner.text()


def test_clicking_an_imported_mask_says_where_it_came_from(qtbot, edit, tmp_path):
    """Issue 22.12: a mask has no selection; with the Navigate tool a click on it shows its details, for an
    imported one the file, field, format and importer version."""
    import json

    import numpy as np

    from core_model.contract import rle_encode
    from endoreview.interchange.importer import IMPORTER_VERSION, Importer
    from tests.ui.helpers import at, click

    ctl = edit
    m = np.zeros((240, 320), np.uint8)
    m[100:160, 120:200] = 1
    doc = {
        "videos": [{"id": 1, "name": "indexed"}],
        "images": [{"id": 1, "file_name": "indexed/0.jpg", "width": 320, "height": 240, "video_id": 1,
                    "frame_id": 0}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": rle_encode(m),
                         "area": int(m.sum()), "bbox": [120, 100, 80, 60], "iscrowd": 1}],
        "categories": [{"id": 1, "name": "polyp"}],
    }  # fmt: skip
    coco = tmp_path / "expert_masks.json"
    coco.write_text(json.dumps(doc))
    rep = _in_thread(
        lambda: Importer(
            ctl.parent().backend.services.store, ctl.parent().backend.project.id
        ).import_annotations(coco, video_id=ctl.video.id)
    )
    assert rep.labels_added >= 1, rep
    ctl.session.reload()
    saved(qtbot, ctl)
    said: list[str] = []
    ctl.message.connect(said.append)
    key(qtbot, ctl, Qt.Key.Key_V)  # Navigate
    click(ctl.player_widget.view, at(ctl, 160, 130))
    qtbot.waitUntil(lambda: any("Here:" in s for s in said), timeout=5000)
    text = next(s for s in said if "Here:" in s)
    assert "polyp mask" in text and "origin imported" in text
    assert f"imported from {coco} [annotations[0]" in text and f"(coco, {IMPORTER_VERSION})" in text
    said.clear()
    click(ctl.player_widget.view, at(ctl, 20, 20))  # nothing there: nothing said
    qtbot.wait(50)
    assert not any("Here:" in s for s in said)
